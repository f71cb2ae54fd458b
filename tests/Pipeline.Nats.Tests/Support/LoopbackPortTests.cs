using System.Net;
using System.Net.Sockets;

namespace Pipeline.Nats.Tests.Support;

public sealed class LoopbackPortTests
{
    [Fact]
    public void A_free_port_can_be_listened_on_at_once()
    {
        var port = LoopbackPort.Free();

        Assert.InRange(port, 1, 65_535);
        using var listener = new TcpListener(IPAddress.Loopback, port);
        listener.Start(); // throws when something already listens there
        Assert.Equal(port, ((IPEndPoint)listener.LocalEndpoint).Port);
    }
}
