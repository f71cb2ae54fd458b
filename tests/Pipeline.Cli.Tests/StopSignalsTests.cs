namespace Pipeline.Cli.Tests;

/// <summary>Review of issue 7: paths that must be usage errors, never an unhandled exception or a lost input.</summary>
public sealed class ReviewInputTests : IDisposable
{
    private const string Noop = """{"command_id":"n1","execution_id":1,"step":"s","tool_kind":"noop","input":{}}""";
    private readonly string _directory = Directory.CreateTempSubdirectory("pipeline-review7-").FullName;

    public void Dispose() => Directory.Delete(_directory, recursive: true);

    private static async Task<(int Exit, string Out, string Err)> Run(string[] args, Func<Stream>? stdin = null)
    {
        using var stdout = new StringWriter();
        using var stderr = new StringWriter();
        var exit = await PipelineCli.InvokeAsync(args, stdout, stderr, interactive: false, stdin: stdin).WaitAsync(TimeSpan.FromSeconds(60));
        return (exit, stdout.ToString(), stderr.ToString());
    }

    private string Commands()
    {
        var path = Path.Combine(_directory, "commands.jsonl");
        File.WriteAllLines(path, [Noop]);
        return path;
    }

    [Fact]
    public async Task An_empty_events_path_is_a_usage_error()
    {
        var (exit, _, error) = await Run(["run", Commands(), "--events", ""]);

        Assert.Equal(2, exit);
        Assert.StartsWith("error: ", error, StringComparison.Ordinal);
        Assert.DoesNotContain("Unhandled exception", error, StringComparison.Ordinal);
        Assert.DoesNotContain("   at ", error, StringComparison.Ordinal);
    }

    [Fact]
    public async Task An_empty_commands_path_is_a_usage_error()
    {
        var (exit, _, error) = await Run(["run", ""]);

        Assert.Equal(2, exit);
        Assert.StartsWith("error: ", error, StringComparison.Ordinal);
        Assert.DoesNotContain("   at ", error, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Events_may_not_name_the_file_standard_input_reads()
    {
        // pipeline run - --events commands.jsonl < commands.jsonl: the events file would truncate the input being read.
        var commands = Commands();
        var before = await File.ReadAllTextAsync(commands);

        var (exit, _, error) = await Run(["run", "-", "--events", commands], stdin: () => File.OpenRead(commands));

        Assert.Equal(2, exit);
        Assert.Contains("--events names the commands file", error, StringComparison.Ordinal);
        Assert.Equal(before, await File.ReadAllTextAsync(commands));
    }
}

/// <summary>Review of issue 7: a stop requested before the run has begun.</summary>
public sealed class ReviewEarlyStopTests : IDisposable
{
    private readonly string _directory = Directory.CreateTempSubdirectory("pipeline-review7-stop-").FullName;

    public void Dispose() => Directory.Delete(_directory, recursive: true);

    [Theory]
    [InlineData(false, 130)]
    [InlineData(true, 131)]
    public async Task A_stop_before_the_pipeline_is_built_ends_in_the_summary_and_the_signals_code(bool immediately, int exitCode)
    {
        var path = Path.Combine(_directory, "commands.jsonl");
        await File.WriteAllLinesAsync(path, Enumerable.Range(1, 100).Select(i => "{\"command_id\":\"n" + i + "\",\"execution_id\":1,\"step\":\"s\",\"tool_kind\":\"noop\",\"input\":{}}"));
        using var stop = new StopSignals();
        stop.Request(new StopRequest(immediately ? "SIGQUIT" : "SIGINT", exitCode, immediately));
        using var stdout = new StringWriter();
        using var stderr = new StringWriter();

        var exit = await PipelineCli.InvokeAsync(["run", path], stdout, stderr, interactive: false, stop).WaitAsync(TimeSpan.FromSeconds(30));

        Assert.Equal(exitCode, exit);
        Assert.Contains("result         stopped by", stdout.ToString(), StringComparison.Ordinal);
        Assert.Matches(@"handles        (\d+) pulled = \1 acked \+ 0 nacked", stdout.ToString());
    }

    [Fact]
    public void A_request_after_dispose_is_harmless()
    {
        var stop = new StopSignals();
        stop.Dispose();
        Assert.True(stop.Request(new StopRequest("SIGQUIT", 131, Immediately: true)));
    }
}
