using System.Text.Json;
using System.Text.RegularExpressions;
using Pipeline.Testing.Conformance;

namespace Pipeline.Cli.Tests.Storage;

/// <summary>
/// Real <c>pipeline</c> processes on the embedded default, a SQLite file in a fresh working
/// directory: the README's newcomer commands, a worker killed (-9) mid-run and a second one
/// finishing its work, and files that cannot be used. Tool runs are counted at a local HTTP
/// endpoint (<see cref="RunCounter"/>), not from a killed worker's events.
/// </summary>
[Collection(RealProcesses.Name)]
public sealed class SqliteWorkerProcessTests(RunCounter runs, ITestOutputHelper output) : IClassFixture<RunCounter>, IDisposable
{
    private static readonly TimeSpan Bound = TimeSpan.FromSeconds(90);

    private readonly string _directory = Directory.CreateTempSubdirectory("pipeline-sqlite-").FullName;

    public void Dispose()
    {
        try
        {
            Directory.Delete(_directory, recursive: true);
        }
        catch (IOException)
        {
            // A mount left behind by a failed test: the temp folder is the machine's to clean.
        }
    }

    private async Task<(int Exit, string Out, string Err)> Run(params string[] args)
    {
        using var process = PipelineProcess.Start(args, workingDirectory: _directory);
        var exit = await process.WaitForExitAsync(Bound);
        output.WriteLine($"pipeline {string.Join(' ', args)}: exit {exit}\n{process.Stdout}{process.Stderr}");
        return (exit, process.Stdout, process.Stderr);
    }

    private static JsonElement Counts(string statusJson) => JsonDocument.Parse(statusJson).RootElement.GetProperty("counts");

    private string CommandsFile(string name, IEnumerable<string> lines)
    {
        var path = Path.Combine(_directory, name);
        File.WriteAllLines(path, lines);
        return path;
    }

    private static IReadOnlyList<string> ErrorLines(string stderr) => [.. stderr.Split('\n').Where(l => l.StartsWith("error:", StringComparison.Ordinal))];

    [Fact]
    public async Task From_a_fresh_folder_enqueue_then_worker_runs_every_sample_and_status_shows_them_completed()
    {
        // The README's two commands, as a newcomer types them from the repository root.
        Directory.CreateDirectory(Path.Combine(_directory, "samples"));
        File.Copy(Path.Combine(AppContext.BaseDirectory, "samples", "commands.jsonl"), Path.Combine(_directory, "samples", "commands.jsonl"));
        var samples = File.ReadAllLines(Path.Combine(_directory, "samples", "commands.jsonl")).Where(l => l.Trim().Length > 0).ToList();

        var (exit, stdout, _) = await Run("enqueue", "samples/commands.jsonl");
        Assert.Equal(0, exit);
        Assert.StartsWith($"enqueued {samples.Count} commands from samples/commands.jsonl to SQLite store {Path.Combine(_directory, "pipeline.db")} in ", stdout, StringComparison.Ordinal);

        (exit, stdout, var stderr) = await Run("worker", "--exit-when-idle", "2", "--events", "events.jsonl");
        Assert.Equal(0, exit);
        Assert.Contains($"consuming {Path.Combine(_directory, "pipeline.db")} (SQLite store, owner ", stderr, StringComparison.Ordinal);
        Assert.Contains("result         all commands succeeded", stdout, StringComparison.Ordinal);
        var completed = File.ReadAllLines(Path.Combine(_directory, "events.jsonl"))
            .Select(l => JsonDocument.Parse(l).RootElement)
            .Where(e => e.GetProperty("event_type").GetString() == "command.completed")
            .Select(e => e.GetProperty("command_id").GetString())
            .Order();
        Assert.Equal(samples.Select(l => JsonDocument.Parse(l).RootElement.GetProperty("command_id").GetString()).Order(), completed);

        (exit, stdout, _) = await Run("status");
        Assert.Equal(0, exit);
        Assert.Matches(new Regex($"^completed +{samples.Count}$", RegexOptions.Multiline), stdout);
        Assert.Matches(new Regex("^pending +0$", RegexOptions.Multiline), stdout);

        (exit, stdout, _) = await Run("status", "--json");
        Assert.Equal(0, exit);
        var counts = Counts(stdout);
        Assert.Equal((0, 0, samples.Count, 0), (counts.GetProperty("pending").GetInt32(), counts.GetProperty("claimed").GetInt32(), counts.GetProperty("completed").GetInt32(), counts.GetProperty("dead_lettered").GetInt32()));

        // The same file again: every command is a duplicate by its command_id; nothing runs twice.
        (exit, stdout, _) = await Run("enqueue", "samples/commands.jsonl");
        Assert.Equal(0, exit);
        Assert.StartsWith("enqueued 0 commands", stdout, StringComparison.Ordinal);
        Assert.Contains($"{samples.Count} already in the store (same command_id): not stored again", stdout, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Enqueue_progress_on_a_store_speaks_of_enqueued_commands_not_of_published_ones()
    {
        // Progress lines come every second when the output is not a terminal: enough commands to see a few.
        var file = CommandsFile("many.jsonl", Enumerable.Range(0, 400_000).Select(i => $$$"""{"execution_id":{{{i / 16}}},"command_id":"p{{{i}}}","step":"s","tool_kind":"noop","input":{}}"""));
        using var process = PipelineProcess.Start(["enqueue", file], workingDirectory: _directory);
        await process.WaitForOutputAsync("progress:", Bound);
        var exit = await process.WaitForExitAsync(Bound);
        output.WriteLine($"exit {exit}\n{process.Stdout}{process.Stderr}");

        Assert.Equal(0, exit);
        var progress = process.Stdout.Split('\n').Where(l => l.StartsWith("progress:", StringComparison.Ordinal)).ToList();
        Assert.NotEmpty(progress);
        Assert.All(progress, line => Assert.Matches(new Regex("^progress: enqueued [0-9]+, being written [0-9]+, malformed 0, [0-9]+/s$"), line));
    }

    /// <summary>
    /// The at-least-once window: with <c>--ack-mode after-dispatch</c> a command is completed in the
    /// store only after its tool finished, so a worker killed (-9) leaves the commands it had started
    /// and not yet settled claimed; once their lease lapses (3 s here) the next worker claims and runs
    /// them again. Every command completes, none is lost, and a command runs twice only if the killed
    /// worker held it: at most --max-in-flight of them.
    /// </summary>
    [Fact]
    public async Task A_worker_killed_mid_run_leaves_its_claims_to_the_next_which_completes_every_command()
    {
        var ids = Enumerable.Range(0, 400).Select(i => $"sqlkill-{i}").ToList();
        var file = CommandsFile("kill.jsonl", ids.Select((id, i) => runs.Command(id, ms: 30, execution: 1 + (i % 40))));
        Assert.Equal(0, (await Run("enqueue", file)).Exit);
        string[] knobs = ["worker", "--ack-mode", "after-dispatch", "--lease-ttl-ms", "3000", "--max-in-flight", "32", "--tool-retries", "0"];

        await runs.KillWorkerMidRunAsync(knobs, _directory, ids, 100, Bound);

        var killedAt = ids.Sum(runs.Of);
        var clock = Stopwatch.StartNew();
        var (exit, stdout, stderr) = await Run([.. knobs, "--exit-when-idle", "3"]);
        Assert.True(exit == 0, $"exit {exit}\n{stdout}\n{stderr}");

        var never = ids.Where(id => runs.Of(id) == 0).ToList();
        var twice = ids.Where(id => runs.Of(id) > 1).ToList();
        var duplicates = ids.Sum(runs.Of) - ids.Count;
        output.WriteLine($"killed after {killedAt} runs; the second worker took {clock.Elapsed.TotalSeconds:0.0} s; {duplicates} runs more than once ({twice.Count} commands)");
        Assert.True(never.Count == 0, $"{never.Count} never ran (lost), e.g. {string.Join(", ", never.Take(5))}");
        Assert.True(ids.All(id => runs.Of(id) <= 2), "a command ran three times or more after one crash");
        Assert.InRange(duplicates, 0, 32);
        var counts = Counts((await Run("status", "--json")).Out);
        Assert.Equal((0, 0, ids.Count), (counts.GetProperty("pending").GetInt32(), counts.GetProperty("claimed").GetInt32(), counts.GetProperty("completed").GetInt32()));
    }

    [Fact]
    [System.Runtime.Versioning.UnsupportedOSPlatform("windows")]
    public async Task A_directory_a_file_that_is_not_a_database_or_a_read_only_file_is_one_error_exit_1_and_left_as_it_was()
    {
        var (exit, _, stderr) = await Run("worker", "--sqlite", _directory, "--exit-when-idle", "1");
        Assert.Equal(1, exit);
        var error = Assert.Single(ErrorLines(stderr));
        Assert.Equal($"error: The SQLite store '{_directory}' cannot be used: it is a directory, not a file. Nothing was claimed.", error);

        var garbage = Path.Combine(_directory, "notes.txt");
        var text = string.Concat(Enumerable.Repeat("these are notes, not a database. ", 100));
        await File.WriteAllTextAsync(garbage, text);
        foreach (var command in new[] { "worker", "enqueue", "status" })
        {
            string[] args = command == "enqueue" ? ["enqueue", "--sqlite", garbage, Path.Combine(AppContext.BaseDirectory, "samples", "commands.jsonl")]
                : command == "worker" ? ["worker", "--sqlite", garbage, "--exit-when-idle", "1"]
                : ["status", "--sqlite", garbage];
            (exit, _, stderr) = await Run(args);
            Assert.Equal(1, exit);
            Assert.Contains("not a SQLite database", Assert.Single(ErrorLines(stderr)), StringComparison.Ordinal);
        }

        Assert.Equal(text, await File.ReadAllTextAsync(garbage));

        // A store with work in it, made read-only: the work stays, and the worker says why it cannot take it.
        var database = Path.Combine(_directory, "work.db");
        Assert.Equal(0, (await Run("enqueue", "--sqlite", database, Path.Combine(AppContext.BaseDirectory, "samples", "commands.jsonl"))).Exit);
        File.SetUnixFileMode(database, UnixFileMode.UserRead | UnixFileMode.GroupRead | UnixFileMode.OtherRead);
        (exit, _, stderr) = await Run("worker", "--sqlite", database, "--exit-when-idle", "1");
        Assert.Equal(1, exit);
        Assert.Contains("read-only", Assert.Single(ErrorLines(stderr)), StringComparison.Ordinal);
        File.SetUnixFileMode(database, UnixFileMode.UserRead | UnixFileMode.UserWrite);
        var counts = Counts((await Run("status", "--sqlite", database, "--json")).Out);
        Assert.Equal(8, counts.GetProperty("pending").GetInt32());
    }

    /// <summary>
    /// A device (/dev/null's kind), a FIFO or a symbolic link loop named as the store: each
    /// command says so in one error, exit 1, and nothing is written beside it (SQLite would leave
    /// a "-journal" file next to a device, /dev/null-journal in /dev).
    /// </summary>
    [ConformanceFact]
    public async Task A_device_a_fifo_or_a_symlink_loop_is_one_error_exit_1_and_nothing_is_written_beside_it()
    {
        var device = Path.Combine(_directory, "null");
        if (!Sh($"mknod '{device}' c 1 3"))
        {
            throw new ConformanceSkipException("a device node cannot be made here (not root, or no CAP_MKNOD)");
        }

        var fifo = Path.Combine(_directory, "fifo");
        Assert.True(Sh($"mkfifo '{fifo}'"));
        var loop = Path.Combine(_directory, "loop");
        File.CreateSymbolicLink(loop, Path.Combine(_directory, "loop2"));
        File.CreateSymbolicLink(Path.Combine(_directory, "loop2"), loop);
        var samples = Path.Combine(AppContext.BaseDirectory, "samples", "commands.jsonl");

        foreach (var (path, cause) in new[] { (device, "not a regular file"), (fifo, "not a regular file"), (loop, "symbolic link") })
        {
            foreach (var args in new[] { ["worker", "--sqlite", path, "--exit-when-idle", "1"], ["enqueue", "--sqlite", path, samples], new[] { "status", "--sqlite", path } })
            {
                var (exit, _, stderr) = await Run(args);
                Assert.Equal(1, exit);
                Assert.Contains(cause, Assert.Single(ErrorLines(stderr)), StringComparison.Ordinal);
            }
        }

        Assert.Equal(["fifo", "loop", "loop2", "null"], Directory.GetFileSystemEntries(_directory).Select(Path.GetFileName).Order(StringComparer.Ordinal));
    }

    [Fact]
    public async Task Status_of_a_file_that_does_not_exist_is_one_error_and_creates_nothing()
    {
        var (exit, stdout, stderr) = await Run("status");

        Assert.Equal(1, exit);
        Assert.Equal(string.Empty, stdout);
        Assert.Contains("does not exist", Assert.Single(ErrorLines(stderr)), StringComparison.Ordinal);
        Assert.False(File.Exists(Path.Combine(_directory, "pipeline.db")));
    }

    [Fact]
    public async Task Status_of_an_empty_file_is_one_error_and_leaves_it_empty()
    {
        var path = Path.Combine(_directory, "pipeline.db");
        await File.WriteAllBytesAsync(path, []);

        var (exit, stdout, stderr) = await Run("status");

        Assert.Equal(1, exit);
        Assert.Equal(string.Empty, stdout);
        Assert.Contains("is empty", Assert.Single(ErrorLines(stderr)), StringComparison.Ordinal);
        Assert.Equal(0, new FileInfo(path).Length);
        Assert.Equal(["pipeline.db"], Directory.GetFileSystemEntries(_directory).Select(Path.GetFileName));
    }

    /// <summary>
    /// A disk that fills up under a running worker (a small tmpfs, then a file that takes the rest):
    /// the worker ends with one error naming the file and the cause, exit 1, and nothing is lost:
    /// once there is room again a second worker completes every command.
    /// </summary>
    [ConformanceFact]
    public async Task A_disk_that_fills_up_mid_run_stops_the_worker_with_one_error_and_loses_nothing()
    {
        var mount = Path.Combine(_directory, "small");
        Directory.CreateDirectory(mount);
        if (!Sh($"mount -t tmpfs -o size=64m tmpfs '{mount}'"))
        {
            throw new ConformanceSkipException("a tmpfs cannot be mounted here (not root, or no CAP_SYS_ADMIN): no disk to fill");
        }

        try
        {
            var database = Path.Combine(mount, "pipeline.db");
            var ids = Enumerable.Range(0, 2_000).Select(i => $"sqlfull-{i}").ToList();
            var file = CommandsFile("full.jsonl", ids.Select((id, i) => runs.Command(id, ms: 5, execution: 1 + (i % 200))));
            Assert.Equal(0, (await Run("enqueue", "--sqlite", database, file)).Exit);

            using var worker = PipelineProcess.Start(["worker", "--sqlite", database, "--ack-mode", "after-dispatch", "--exit-when-idle", "30"], workingDirectory: _directory);
            await runs.WaitForRunsAsync(ids, 200, worker, Bound);

            // What room is left goes to a filler: the store's next write finds the disk full.
            Sh($"dd if=/dev/zero of='{mount}/filler' bs=64k 2>/dev/null; sync");
            var exit = await worker.WaitForExitAsync(Bound);
            output.WriteLine($"exit {exit}\n{worker.Stdout}\n{worker.Stderr}");
            Assert.Equal(1, exit);
            Assert.Contains("the disk is full", Assert.Single(ErrorLines(worker.Stderr)), StringComparison.Ordinal);
            Assert.Contains("result         stopped on the error above", worker.Stdout, StringComparison.Ordinal);

            File.Delete(Path.Combine(mount, "filler"));
            var (again, stdout, stderr) = await Run("worker", "--sqlite", database, "--ack-mode", "after-dispatch", "--lease-ttl-ms", "3000", "--exit-when-idle", "3");
            Assert.True(again == 0, $"exit {again}\n{stdout}\n{stderr}");
            Assert.DoesNotContain(ids, id => runs.Of(id) == 0);
            var counts = Counts((await Run("status", "--sqlite", database, "--json")).Out);
            Assert.Equal((0, 0, ids.Count), (counts.GetProperty("pending").GetInt32(), counts.GetProperty("claimed").GetInt32(), counts.GetProperty("completed").GetInt32()));
        }
        finally
        {
            Sh($"umount -l '{mount}'");
        }
    }

    private static bool Sh(string script)
    {
        using var process = Process.Start(new ProcessStartInfo("/bin/sh", ["-c", script]) { RedirectStandardError = true, RedirectStandardOutput = true })!;
        process.WaitForExit();
        return process.ExitCode == 0;
    }
}
