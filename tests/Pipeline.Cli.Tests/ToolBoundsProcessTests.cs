using Microsoft.AspNetCore.Builder;
namespace Pipeline.Cli.Tests;

/// <summary>A Kestrel server on 127.0.0.1 whose <c>/endless</c> body never ends.</summary>
public sealed class EndlessBodyServer : LoopbackWebServer
{
    protected override void Map(WebApplication app) => app.MapGet("/endless", WriteEndlessBodyAsync);
}

/// <summary>
/// The real <c>pipeline</c> process under output that never ends: its peak resident memory
/// (VmHWM) stays bounded and the results say truncated.
/// </summary>
/// <remarks>
/// The bound: on the 2-core CI machine a noop run of this binary peaks at about 50 MB, these two
/// tests at about 60 MB. With the cap broken on purpose (kept bytes raised to 1 GiB for shell,
/// 256 MB for http) they peaked at 2.9 GB and 6.2 GB and failed. 256 MB leaves room for the
/// runtime's heap growth on another machine while failing any unbounded read long before the
/// gigabytes it would reach.
/// </remarks>
[Collection(RealProcesses.Name)]
public sealed class ToolBoundsProcessTests(EndlessBodyServer server, ITestOutputHelper output) : IClassFixture<EndlessBodyServer>, IDisposable
{
    private const long PeakRssBound = 256L * 1024 * 1024;
    private const int Cap = 64 * 1024;
    private readonly string _directory = Directory.CreateTempSubdirectory("pipeline-bounds-").FullName;

    public void Dispose() => Directory.Delete(_directory, recursive: true);

    [Fact]
    public async Task Yes_under_the_shell_tool_keeps_memory_bounded_and_is_a_truncated_timeout()
    {
        // Each attempt lasts its 2 s timeout; the engine retries a timeout twice, so about 6 s of `yes` at full speed.
        var (peak, events) = await RunAsync(
            """{"command_id":"yes-1","execution_id":1,"step":"s","tool_kind":"shell","input":{"command":"yes","timeout_ms":2000}}""");

        Assert.True(peak < PeakRssBound, $"peak RSS {peak / (1024 * 1024)} MB, bound {PeakRssBound / (1024 * 1024)} MB");
        var failed = events.Single(e => e.GetProperty("event_type").GetString() == "command.failed");
        Assert.Equal("shell: 'yes' timed out after 2000 ms and was killed.", failed.GetProperty("error").GetString());
        var result = failed.GetProperty("result");
        Assert.True(result.GetProperty("truncated").GetBoolean());
        Assert.Equal(Cap, result.GetProperty("stdout").GetString()!.Length);
        Assert.True(result.GetProperty("stdout_bytes").GetInt64() > 100L * Cap, "yes wrote far more than it kept");
    }

    [Fact]
    public async Task Four_endless_http_bodies_at_once_keep_memory_bounded_and_are_truncated()
    {
        var url = new Uri(server.BaseAddress, "/endless");
        var commands = string.Join('\n', Enumerable.Range(1, 4).Select(i =>
            $$$"""{"command_id":"http-{{{i}}}","execution_id":1,"step":"s","tool_kind":"http","input":{"url":"{{{url}}}","timeout_ms":20000}}"""));

        var (peak, events) = await RunAsync(commands);

        Assert.True(peak < PeakRssBound, $"peak RSS {peak / (1024 * 1024)} MB, bound {PeakRssBound / (1024 * 1024)} MB");
        var completed = events.Where(e => e.GetProperty("event_type").GetString() == "command.completed").ToList();
        Assert.Equal(4, completed.Count);
        foreach (var done in completed)
        {
            Assert.True(done.GetProperty("result").GetProperty("truncated").GetBoolean());
            Assert.Equal(Cap, done.GetProperty("result").GetProperty("body").GetString()!.Length);
        }
    }

    private async Task<(long PeakRss, List<JsonElement> Events)> RunAsync(string commandLines)
    {
        var commands = Path.Combine(_directory, "cmds.jsonl");
        var events = Path.Combine(_directory, "e.jsonl");
        await File.WriteAllTextAsync(commands, commandLines + "\n");

        using var pipeline = PipelineProcess.Start(["run", commands, "--enable-shell", "--events", events]);
        await pipeline.WaitForExitAsync(TimeSpan.FromSeconds(60));

        output.WriteLine($"peak RSS {pipeline.PeakRssBytes / (1024.0 * 1024):0.0} MB in {pipeline.Elapsed.TotalSeconds:0.0} s");
        var lines = await File.ReadAllLinesAsync(events);
        return (pipeline.PeakRssBytes, lines.Select(l => JsonDocument.Parse(l).RootElement.Clone()).ToList());
    }
}
