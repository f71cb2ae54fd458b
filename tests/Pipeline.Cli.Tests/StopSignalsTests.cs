namespace Pipeline.Cli.Tests;

/// <summary>StopSignals: a stop requested before the pipeline is built still ends in the summary and the signal's exit code; a request after dispose is harmless.</summary>
public sealed class StopSignalsTests : IDisposable
{
    private readonly string _directory = Directory.CreateTempSubdirectory("pipeline-stop-").FullName;

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
