using System.Text.Json;

namespace Pipeline.Cli.Tests.Storage;

/// <summary>
/// Real <c>pipeline</c> processes on a PostgreSQL store (a throwaway cluster of their own, a
/// database per test): enqueue, worker and status with the connection string in
/// <c>$PIPELINE_POSTGRES</c> and its password never printed, a worker killed (-9) mid-run, and the
/// server restarted (<c>pg_ctl restart -m immediate</c>) under a running worker. Tool runs are
/// counted at a local HTTP endpoint (<see cref="RunCounter"/>).
/// </summary>
[Collection(RealProcesses.Name)]
public sealed class PostgresWorkerProcessTests(PostgresServerFixture postgres, RunCounter runs, ITestOutputHelper output) : IClassFixture<PostgresServerFixture>, IClassFixture<RunCounter>, IDisposable
{
    private const string Password = "pw-never-printed-7f3a";
    private static readonly TimeSpan Bound = TimeSpan.FromSeconds(120);

    private readonly string _directory = Directory.CreateTempSubdirectory("pipeline-postgres-").FullName;

    public void Dispose() => Directory.Delete(_directory, recursive: true);

    // The server trusts loopback: the password is sent nowhere, but every line is checked for it.
    private async Task<Dictionary<string, string>> DatabaseAsync() =>
        new() { ["PIPELINE_POSTGRES"] = $"{await postgres.CreateDatabaseAsync("cli")};Password={Password}" };

    private async Task<(int Exit, string Out, string Err)> Run(Dictionary<string, string> environment, params string[] args)
    {
        using var process = PipelineProcess.Start(args, workingDirectory: _directory, environment: environment);
        var exit = await process.WaitForExitAsync(Bound);
        output.WriteLine($"pipeline {string.Join(' ', args)}: exit {exit}\n{process.Stdout}{process.Stderr}");
        Assert.DoesNotContain(Password, process.Stdout + process.Stderr, StringComparison.Ordinal);
        return (exit, process.Stdout, process.Stderr);
    }

    private string CommandsFile(string name, IEnumerable<string> lines)
    {
        var path = Path.Combine(_directory, name);
        File.WriteAllLines(path, lines);
        return path;
    }

    /// <summary>A fresh database holding <paramref name="count"/> commands of <paramref name="ms"/> each, spread over <paramref name="executions"/> sessions, enqueued by <c>pipeline enqueue</c>.</summary>
    private async Task<(Dictionary<string, string> Database, string Connection, List<string> Ids)> EnqueuedAsync(string prefix, int count, int ms, int executions)
    {
        var database = await DatabaseAsync();
        var connection = database["PIPELINE_POSTGRES"];
        var ids = Enumerable.Range(0, count).Select(i => $"{prefix}-{i}").ToList();
        var file = CommandsFile($"{prefix}.jsonl", ids.Select((id, i) => runs.Command(id, ms, execution: 1 + (i % executions))));
        Assert.Equal(0, (await Run(database, "enqueue", "--postgres", connection, file)).Exit);
        return (database, connection, ids);
    }

    private static JsonElement Counts(string statusJson) => JsonDocument.Parse(statusJson).RootElement.GetProperty("counts");

    [Fact]
    public async Task Enqueue_worker_and_status_run_on_postgres_and_no_line_holds_the_password()
    {
        var database = await DatabaseAsync();
        var samples = Path.Combine(AppContext.BaseDirectory, "samples", "commands.jsonl");
        var count = File.ReadAllLines(samples).Count(l => l.Trim().Length > 0);
        var connection = database["PIPELINE_POSTGRES"];

        var (exit, stdout, _) = await Run([], "enqueue", "--postgres", connection, samples);
        Assert.Equal(0, exit);
        Assert.Contains($"enqueued {count} commands", stdout, StringComparison.Ordinal);
        Assert.Contains("PostgreSQL store Host=", stdout, StringComparison.Ordinal);

        // The connection from the environment, as the docs advise (a command line shows in 'ps').
        (exit, stdout, var stderr) = await Run(database, "worker", "--exit-when-idle", "2");
        Assert.Contains("(PostgreSQL store, owner ", stderr, StringComparison.Ordinal);
        Assert.True(exit == 0, stderr);
        Assert.Contains("result         all commands succeeded", stdout, StringComparison.Ordinal);

        (exit, stdout, _) = await Run(database, "status", "--json");
        Assert.Equal(0, exit);
        var counts = Counts(stdout);
        Assert.Equal((0, count), (counts.GetProperty("pending").GetInt32(), counts.GetProperty("completed").GetInt32()));
        Assert.Equal("postgres", JsonDocument.Parse(stdout).RootElement.GetProperty("store").GetString());

        (exit, stdout, _) = await Run([], "enqueue", "--postgres", connection, samples);
        Assert.Equal(0, exit);
        Assert.Contains($"{count} already in the store (same command_id): not stored again", stdout, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_user_without_the_rights_to_create_the_store_gets_one_line_naming_the_grant_it_needs()
    {
        // A role that may connect (PUBLIC may) but not create the store's schema in the database.
        var database = await DatabaseAsync();
        var role = await postgres.CreateRoleAsync("norights");
        var connection = new Npgsql.NpgsqlConnectionStringBuilder(database["PIPELINE_POSTGRES"]) { Username = role }.ConnectionString;
        var file = CommandsFile("one.jsonl", [runs.Command("nr-1", 0, execution: 1)]);

        foreach (var args in new[] { new[] { "enqueue", "--postgres", connection, file }, ["worker", "--postgres", connection, "--exit-when-idle", "1"], ["status", "--postgres", connection] })
        {
            var (exit, _, stderr) = await Run([], args);
            Assert.Equal(1, exit);
            var errors = stderr.Split('\n').Where(l => l.StartsWith("error:", StringComparison.Ordinal)).ToList();
            var error = Assert.Single(errors);
            Assert.Contains($"42501: permission denied for database {new Npgsql.NpgsqlConnectionStringBuilder(connection).Database}. The user needs CONNECT on the database, and the first time CREATE on it to make schema pipeline (GRANT CONNECT, CREATE ON DATABASE ... TO {role}), or a schema made for it (CREATE SCHEMA pipeline AUTHORIZATION {role})", error, StringComparison.Ordinal);
            Assert.DoesNotContain("DETAIL", stderr, StringComparison.Ordinal);
        }

        Assert.Equal(0, runs.Of("nr-1"));

        // The second way the message names: a schema made for the user, who still may not create one.
        await using (var admin = new Npgsql.NpgsqlConnection(database["PIPELINE_POSTGRES"]))
        {
            await admin.OpenAsync();
            await using var create = new Npgsql.NpgsqlCommand($"CREATE SCHEMA pipeline AUTHORIZATION \"{role}\"", admin);
            await create.ExecuteNonQueryAsync();
        }

        Assert.Equal(0, (await Run([], "enqueue", "--postgres", connection, file)).Exit);
        var (workerExit, stdout, workerErr) = await Run([], "worker", "--postgres", connection, "--exit-when-idle", "1");
        Assert.True(workerExit == 0, workerErr);
        Assert.Contains("result         all commands succeeded", stdout, StringComparison.Ordinal);
        Assert.Equal(1, runs.Of("nr-1"));
    }

    [Fact]
    public async Task A_worker_killed_mid_run_leaves_its_claims_to_the_next_which_completes_every_command()
    {
        var (database, connection, ids) = await EnqueuedAsync("pgkill", 400, ms: 30, executions: 40);
        string[] knobs = ["worker", "--postgres", connection, "--ack-mode", "after-dispatch", "--lease-ttl-ms", "3000", "--max-in-flight", "32", "--tool-retries", "0"];

        await runs.KillWorkerMidRunAsync(knobs, _directory, ids, 100, Bound);

        var (exit, stdout, stderr) = await Run(database, [.. knobs, "--exit-when-idle", "3"]);
        Assert.True(exit == 0, $"exit {exit}\n{stdout}\n{stderr}");
        var duplicates = ids.Sum(runs.Of) - ids.Count;
        output.WriteLine($"{duplicates} runs more than once");
        Assert.DoesNotContain(ids, id => runs.Of(id) == 0);
        Assert.True(ids.All(id => runs.Of(id) <= 2), "a command ran three times or more after one crash");
        Assert.InRange(duplicates, 0, 32);
        var counts = Counts((await Run(database, "status", "--postgres", connection, "--json")).Out);
        Assert.Equal((0, 0, ids.Count), (counts.GetProperty("pending").GetInt32(), counts.GetProperty("claimed").GetInt32(), counts.GetProperty("completed").GetInt32()));
    }

    [Fact]
    public async Task A_server_restarted_under_a_running_worker_is_reconnected_to_and_every_command_completes()
    {
        var (database, connection, ids) = await EnqueuedAsync("pgrestart", 600, ms: 20, executions: 60);

        using var worker = PipelineProcess.Start(["worker", "--postgres", connection, "--ack-mode", "after-dispatch", "--lease-ttl-ms", "5000", "--exit-when-idle", "5"], workingDirectory: _directory);
        await runs.WaitForRunsAsync(ids, 150, worker, Bound);

        await postgres.RestartAsync();
        var exit = await worker.WaitForExitAsync(Bound);
        output.WriteLine($"exit {exit}\n{worker.Stdout}\n{worker.Stderr}");
        Assert.DoesNotContain(Password, worker.Stdout + worker.Stderr, StringComparison.Ordinal);
        // The settles caught by the restart wait it out (the store source's settle timeout, 30 s, which the
        // engine honours over its own 5 s) and land once the server is back: no settle error, exit 0.
        Assert.True(exit == 0, $"exit {exit}\n{worker.Stdout}\n{worker.Stderr}");
        Assert.Contains("result         all commands succeeded", worker.Stdout, StringComparison.Ordinal);
        Assert.DoesNotContain("error:", worker.Stderr, StringComparison.Ordinal);
        Assert.Contains("0 claimed by other workers, 0 pending", worker.Stdout, StringComparison.Ordinal);
        Assert.DoesNotContain(ids, id => runs.Of(id) == 0);
        var counts = Counts((await Run(database, "status", "--postgres", connection, "--json")).Out);
        Assert.Equal((0, 0, ids.Count), (counts.GetProperty("pending").GetInt32(), counts.GetProperty("claimed").GetInt32(), counts.GetProperty("completed").GetInt32()));
    }
}
