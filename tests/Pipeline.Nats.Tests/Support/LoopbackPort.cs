using System.Net;
using System.Net.Sockets;

namespace Pipeline.Nats.Tests.Support;

/// <summary>
/// A free loopback TCP port for a nats-server to listen on. One file, linked into every project
/// that starts a server (the NATS and CLI tests through <see cref="NatsServerFixture"/>, the bench
/// directly), with no test framework in it so the bench can take it too.
/// </summary>
internal static class LoopbackPort
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
