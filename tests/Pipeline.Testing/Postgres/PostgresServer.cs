using System.Diagnostics;
using System.Globalization;
using Npgsql;

namespace Pipeline.Testing;

/// <summary>
/// A real PostgreSQL cluster for tests and the bench: <c>initdb</c> into a temporary folder (trust
/// auth, loopback only, superuser <c>postgres</c>), <c>postgres</c> on 127.0.0.1 at a free port with
/// its unix sockets in that folder. It can be stopped, started and restarted (<c>pg_ctl -m immediate</c>:
/// a crash, no checkpoint). No test framework in it, so the bench can link it; the tests take it
/// through <see cref="PostgresServerFixture"/>.
/// </summary>
/// <remarks>
/// PostgreSQL refuses to run as root. When this process is root (CI's containers are), every
/// PostgreSQL binary runs through <c>setpriv</c> as the <c>postgres</c> user (Debian's package makes
/// it), or <c>nobody</c> when there is none, and the folder is handed to that user.
/// </remarks>
public sealed class PostgresServer : IAsyncDisposable
{
    private static readonly string[] BinaryFolders = ["/usr/lib/postgresql/15/bin"];

    private readonly string _root = Path.Combine(Path.GetTempPath(), $"pipeline-pg-{Guid.NewGuid():N}");
    private readonly string _bin;
    private readonly (int User, int Group)? _runAs;
    private int _databases;

    private PostgresServer(string bin, (int User, int Group)? runAs)
    {
        _bin = bin;
        _runAs = runAs;
    }

    /// <summary>The loopback port, fixed for the server's life.</summary>
    public int Port { get; } = LoopbackPort.Free();

    /// <summary>Whether the server is up (as far as this object started or stopped it).</summary>
    public bool Running { get; private set; }

    /// <summary>The cluster's data folder (its <c>postmaster.pid</c> names the server's process).</summary>
    public string DataDirectory => Path.Combine(_root, "data");

    private string SocketDirectory => Path.Combine(_root, "sockets");

    private string LogFile => Path.Combine(_root, "server.log");

    /// <summary>
    /// Creates the cluster and starts it; waits until it accepts connections. Throws when the
    /// binaries are missing, naming ./test.sh (which installs them).
    /// </summary>
    public static async Task<PostgresServer> StartNewAsync()
    {
        var server = new PostgresServer(FindBinaries(), RunAsUser());
        try
        {
            await server.CreateClusterAsync();
            await server.StartAsync();
            return server;
        }
        catch
        {
            await server.DisposeAsync();
            throw;
        }
    }

    /// <summary>A connection string to <paramref name="database"/> as the superuser, over TCP on loopback.</summary>
    public string ConnectionString(string database = "postgres") => new NpgsqlConnectionStringBuilder
    {
        Host = "127.0.0.1",
        Port = Port,
        Username = "postgres",
        Database = database,
        Timeout = 5,
    }.ConnectionString;

    /// <summary>Creates a fresh, empty database (a name no other caller gets) and returns a connection string to it.</summary>
    public async Task<string> CreateDatabaseAsync(string prefix = "test") =>
        ConnectionString(await CreateUniqueAsync(prefix, name => $"CREATE DATABASE \"{name}\""));

    /// <summary>Creates a login role with no rights of its own (what PUBLIC may do: connect, not create) and returns its name.</summary>
    public Task<string> CreateRoleAsync(string prefix = "role") => CreateUniqueAsync(prefix, name => $"CREATE ROLE \"{name}\" LOGIN");

    // Runs the statement made for a name no other caller gets, as the superuser; returns the name.
    private async Task<string> CreateUniqueAsync(string prefix, Func<string, string> statement)
    {
        var name = $"{prefix}_{Interlocked.Increment(ref _databases)}_{Guid.NewGuid().ToString("N")[..8]}".ToLowerInvariant();
        await using var connection = new NpgsqlConnection(ConnectionString() + ";Pooling=false");
        await connection.OpenAsync();
        await using var create = new NpgsqlCommand(statement(name), connection);
        await create.ExecuteNonQueryAsync();
        return name;
    }

    /// <summary>Starts the server (again) on the same port and data, and waits until it accepts connections.</summary>
    public async Task StartAsync()
    {
        if (Running)
        {
            return;
        }

        await PgCtlAsync("start", "-l", LogFile);
        Running = true;
        await WaitUntilReadyAsync(TimeSpan.FromSeconds(120));
    }

    /// <summary>
    /// <c>pg_ctl stop -m immediate</c>: every backend killed at once, no shutdown checkpoint (a
    /// crash: what was not committed is lost, recovery replays the WAL on start). A checkpoint
    /// first keeps that replay short (the tests' databases and batches write hundreds of MB of WAL,
    /// which a loaded machine took over a minute to replay); it ends no transaction.
    /// </summary>
    public async Task StopAsync()
    {
        if (!Running)
        {
            return;
        }

        await CheckpointAsync();
        await PgCtlAsync("stop", "-m", "immediate");
        Running = false;
    }

    /// <summary><c>pg_ctl restart -m immediate</c>: a crash and a start; waits until it accepts connections again.</summary>
    public async Task RestartAsync()
    {
        await CheckpointAsync();
        await PgCtlAsync("restart", "-m", "immediate", "-l", LogFile);
        Running = true;
        await WaitUntilReadyAsync(TimeSpan.FromSeconds(120));
    }

    /// <summary>Stops the server (immediately: its data goes) and deletes the folder.</summary>
    public async ValueTask DisposeAsync()
    {
        try
        {
            if (Running || File.Exists(Path.Combine(DataDirectory, "postmaster.pid")))
            {
                await PgCtlAsync("stop", "-m", "immediate");
                Running = false;
            }
        }
        finally
        {
            try
            {
                Directory.Delete(_root, recursive: true);
            }
            catch (IOException)
            {
                // A file still being closed; the temp folder is cleaned by the OS eventually.
            }
        }
    }

    private async Task CreateClusterAsync()
    {
        Directory.CreateDirectory(_root);
        Directory.CreateDirectory(SocketDirectory);
        if (_runAs is var (user, group))
        {
            await RunAsync("chown", [$"{user}:{group}", _root, SocketDirectory], asPostgres: false);
        }

        // --no-sync: initdb's own files need no fsync in a throwaway folder; the server itself runs with fsync on.
        await RunAsync(Path.Combine(_bin, "initdb"), ["-D", DataDirectory, "-U", "postgres", "--auth=trust", "-E", "UTF8", "--locale=C", "--no-sync", "--no-instructions"], asPostgres: true);

        // Small for 2 cores shared with the tests. synchronous_commit stays on (the default, said
        // anyway): the store's promise is that a settle is durable when it returns, and the
        // figures should be measured under that promise. fsync on for the same reason.
        var settings = string.Join('\n',
            "listen_addresses = '127.0.0.1'",
            string.Create(CultureInfo.InvariantCulture, $"port = {Port}"),
            $"unix_socket_directories = '{SocketDirectory}'",
            "shared_buffers = 128MB",
            "fsync = on",
            "synchronous_commit = on",
            "max_connections = 100",
            "max_worker_processes = 4",
            "max_parallel_workers_per_gather = 0",
            "logging_collector = off",
            string.Empty);
        await File.AppendAllTextAsync(Path.Combine(DataDirectory, "postgresql.conf"), settings);
    }

    private Task PgCtlAsync(string action, params string[] options) =>
        RunAsync(Path.Combine(_bin, "pg_ctl"), [action, "-D", DataDirectory, "-w", "-t", "300", "-s", .. options], asPostgres: true);

    private async Task CheckpointAsync()
    {
        await using var connection = new NpgsqlConnection(ConnectionString() + ";Pooling=false");
        await connection.OpenAsync();
        await using var checkpoint = new NpgsqlCommand("checkpoint", connection) { CommandTimeout = 300 };
        await checkpoint.ExecuteNonQueryAsync();
    }

    private async Task RunAsync(string file, IReadOnlyList<string> arguments, bool asPostgres)
    {
        var info = new ProcessStartInfo
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
            WorkingDirectory = _root,
        };
        if (asPostgres && _runAs is var (user, group))
        {
            // setpriv execs the binary itself: same process, the unprivileged user's ids, no supplementary groups.
            info.FileName = "setpriv";
            foreach (var argument in new[] { $"--reuid={user}", $"--regid={group}", "--clear-groups", "--" })
            {
                info.ArgumentList.Add(argument);
            }

            info.ArgumentList.Add(file);
        }
        else
        {
            info.FileName = file;
        }

        foreach (var argument in arguments)
        {
            info.ArgumentList.Add(argument);
        }

        using var process = Process.Start(info) ?? throw new InvalidOperationException($"{file} did not start.");
        var output = process.StandardOutput.ReadToEndAsync();
        var error = process.StandardError.ReadToEndAsync();
        await process.WaitForExitAsync();
        if (process.ExitCode != 0)
        {
            throw new InvalidOperationException($"{info.FileName} {string.Join(' ', info.ArgumentList)} exited with {process.ExitCode}: {await output}{await error} | log: {Tail()}");
        }
    }

    private Task WaitUntilReadyAsync(TimeSpan bound) => ServerReadiness.WaitAsync(
        async () =>
        {
            await using var probe = new NpgsqlConnection(ConnectionString() + ";Pooling=false;Timeout=2");
            await probe.OpenAsync();
            await using var select = new NpgsqlCommand("select 1", probe);
            await select.ExecuteScalarAsync();
        },
        bound,
        () => $"PostgreSQL not ready on 127.0.0.1:{Port} after {bound.TotalSeconds} s: {Tail()}");

    private string Tail() => ServerReadiness.LogTail(LogFile);

    /// <summary>The folder holding initdb and pg_ctl: Debian's PostgreSQL 15 folder, else the one on PATH.</summary>
    private static string FindBinaries()
    {
        var onPath = (Environment.GetEnvironmentVariable("PATH") ?? string.Empty).Split(':', StringSplitOptions.RemoveEmptyEntries);
        foreach (var folder in BinaryFolders.Concat(onPath))
        {
            if (File.Exists(Path.Combine(folder, "initdb")) && File.Exists(Path.Combine(folder, "pg_ctl")))
            {
                // A symlink on PATH (e.g. /usr/local/bin/initdb) resolves to the real folder, where postgres sits beside it.
                var target = new FileInfo(Path.Combine(folder, "initdb")).ResolveLinkTarget(returnFinalTarget: true)?.FullName;
                return target is null ? folder : Path.GetDirectoryName(target)!;
            }
        }

        throw new InvalidOperationException("PostgreSQL 15 is not installed (no initdb and pg_ctl in /usr/lib/postgresql/15/bin or on PATH): run ./test.sh, which installs it, or apt-get install postgresql-15.");
    }

    /// <summary>Null when this process is not root; otherwise the user PostgreSQL runs as: <c>postgres</c>, else <c>nobody</c>.</summary>
    private static (int User, int Group)? RunAsUser()
    {
        if (!Environment.IsPrivilegedProcess)
        {
            return null;
        }

        var users = File.ReadAllLines("/etc/passwd").Select(line => line.Split(':')).Where(fields => fields.Length >= 4).ToList();
        foreach (var name in new[] { "postgres", "nobody" })
        {
            if (users.FirstOrDefault(fields => fields[0] == name) is { } fields)
            {
                return (int.Parse(fields[2], CultureInfo.InvariantCulture), int.Parse(fields[3], CultureInfo.InvariantCulture));
            }
        }

        throw new InvalidOperationException("Running as root, and neither a postgres nor a nobody user exists to run PostgreSQL as (it refuses root): add one, or run the tests as another user.");
    }
}
