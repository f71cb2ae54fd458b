using NATS.Client.Core;

namespace Pipeline.Testing;

/// <summary>
/// A test class on the shared nats-server with a stream of its own (<see cref="Stream"/>, subjects
/// <c>{Stream}.&gt;</c>, created unless the test's own code creates it) and a connection of its own.
/// The server is started before each test (one before may have stopped it) and left running after it.
/// </summary>
/// <param name="server">The collection's server.</param>
/// <param name="prefix">What the stream's name and the connection's name begin with.</param>
/// <param name="createStream">Whether to create the stream before each test (default true).</param>
public abstract class StreamTest(NatsServerFixture server, string prefix, bool createStream = true) : IAsyncLifetime
{
    protected NatsServerFixture Server => server;

    /// <summary>A stream name no other test uses.</summary>
    protected string Stream { get; } = NatsServerFixture.UniqueName(prefix);

    /// <summary>The test's connection (publishing, reading the server's state).</summary>
    protected NatsConnection Connection { get; private set; } = null!;

    public virtual async Task InitializeAsync()
    {
        await server.StartAsync();
        Connection = server.Connect(prefix);
        if (createStream)
        {
            await JetStream.CreateStreamAsync(Connection, Stream, $"{Stream}.>");
        }
    }

    public virtual async Task DisposeAsync()
    {
        await server.StartAsync();
        await Connection.DisposeAsync();
    }
}
