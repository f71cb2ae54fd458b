namespace Pipeline.Testing;

/// <summary>
/// One real PostgreSQL 15 cluster (<see cref="PostgresServer"/>) shared by every test in a test
/// project's PostgreSQL collection: each test class takes its own fresh database from
/// <see cref="CreateDatabaseAsync"/>, so classes never see each other's rows. The restart tests
/// stop, start or restart the whole server, which is why the classes take turns (one collection).
/// </summary>
public sealed class PostgresServerFixture : IAsyncLifetime
{
    private PostgresServer? _server;

    /// <summary>The running server (after <see cref="InitializeAsync"/>).</summary>
    public PostgresServer Server => _server ?? throw new InvalidOperationException("The PostgreSQL fixture is not initialized.");

    /// <summary>The loopback port.</summary>
    public int Port => Server.Port;

    public async Task InitializeAsync() => _server = await PostgresServer.StartNewAsync();

    public async Task DisposeAsync()
    {
        if (_server is { } server)
        {
            await server.DisposeAsync();
        }
    }

    /// <summary>A fresh, empty database for one test class: its connection string.</summary>
    public Task<string> CreateDatabaseAsync(string prefix = "test") => Server.CreateDatabaseAsync(prefix);

    /// <inheritdoc cref="PostgresServer.CreateRoleAsync"/>
    public Task<string> CreateRoleAsync(string prefix = "role") => Server.CreateRoleAsync(prefix);

    /// <summary><c>pg_ctl stop -m immediate</c>: a crash; connections fail until <see cref="StartAsync"/>.</summary>
    public Task StopAsync() => Server.StopAsync();

    /// <summary>Starts the server again on the same port and data; waits until it accepts connections.</summary>
    public Task StartAsync() => Server.StartAsync();

    /// <summary><c>pg_ctl restart -m immediate</c>: a crash and a start; waits until it accepts connections again.</summary>
    public Task RestartAsync() => Server.RestartAsync();
}
