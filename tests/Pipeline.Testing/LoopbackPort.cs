using System.Net;
using System.Net.Sockets;

namespace Pipeline.Testing;

/// <summary>
/// A free loopback TCP port for a nats-server to listen on. One file, linked into every project
/// that starts a server (the test projects through <see cref="NatsServerFixture"/>, the bench
/// directly), with no test framework in it so the bench can take it too.
/// </summary>
public static class LoopbackPort
{
    /// <summary>A port nothing listens on right now (the OS picks it; a race with another process is possible but rare).</summary>
    public static int Free()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        var port = ((IPEndPoint)listener.LocalEndpoint).Port;
        listener.Stop();
        return port;
    }
}
