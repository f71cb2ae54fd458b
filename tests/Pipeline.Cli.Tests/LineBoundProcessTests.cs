namespace Pipeline.Cli.Tests;

/// <summary>The line bound (--max-line-bytes) in the real <c>pipeline</c> process: a line far over it is a claim failure, and the process memory stays bounded.</summary>
[Collection(RealProcesses.Name)]
public sealed class LineBoundProcessTests(ITestOutputHelper output) : IDisposable
{
    private const long HugeLineBytes = 300_000_000;

    // Measured on a 2-core Linux VM: 49 MB peak RSS for two small commands, 53 MB with the 300 MB
    // line between them (2.5 GB before lines were bounded). 150 MB leaves the runtime room and
    // is still half of what holding the line alone would take.
    private const long PeakRssBound = 150_000_000;

    private readonly string _directory = Directory.CreateTempSubdirectory("pipeline-line-bound-").FullName;

    public void Dispose() => Directory.Delete(_directory, recursive: true);

    private static string Command(string id, string tool = "noop", string input = "{}") =>
        $$$"""{"command_id":"{{{id}}}","execution_id":7,"step":"s","tool_kind":"{{{tool}}}","input":{{{input}}}}""";

    [Fact]
    public async Task A_300_MB_line_is_a_claim_failure_and_the_process_memory_stays_bounded()
    {
        var commands = Path.Combine(_directory, "hostile.jsonl");
        await WriteWithHugeLineAsync(commands);
        var events = Path.Combine(_directory, "events.jsonl");

        using var pipeline = PipelineProcess.Start(["run", commands, "--events", events, "--plain"]);
        var exit = await pipeline.WaitForExitAsync(TimeSpan.FromMinutes(2));
        output.WriteLine($"exit {exit}, peak RSS {pipeline.PeakRssBytes:N0} bytes, {pipeline.Elapsed.TotalSeconds:F1} s");

        Assert.True(exit == 1, $"exit {exit}\nstdout:\n{pipeline.Stdout}\nstderr:\n{pipeline.Stderr}");
        Assert.True(pipeline.PeakRssBytes > 0, "no memory sample was taken");
        Assert.True(pipeline.PeakRssBytes < PeakRssBound, $"peak RSS {pipeline.PeakRssBytes:N0} bytes; the bound is {PeakRssBound:N0}");

        var emitted = (await File.ReadAllLinesAsync(events)).Select(l => JsonDocument.Parse(l).RootElement).ToList();
        var failed = Assert.Single(emitted, e => e.GetProperty("event_type").GetString() == "claim.failed");
        Assert.Equal("hostile.jsonl line 2: line is longer than the limit of 1048576 bytes (--max-line-bytes)", failed.GetProperty("error").GetString());
        var completed = emitted
            .Where(e => e.GetProperty("event_type").GetString() == "command.completed")
            .Select(e => e.GetProperty("command_id").GetString())
            .Order(StringComparer.Ordinal);
        Assert.Equal(["first", "last"], completed);
        Assert.Contains("hostile.jsonl line 2: line is longer than the limit", pipeline.Stdout, StringComparison.Ordinal);
    }

    /// <summary>A valid command, one 300 MB line (the start of a command, then padding), a valid command.</summary>
    private static async Task WriteWithHugeLineAsync(string path)
    {
        await using var file = new FileStream(path, FileMode.CreateNew, FileAccess.Write, FileShare.None, 1 << 20, useAsync: true);
        await file.WriteAsync(Encoding.UTF8.GetBytes(Command("first") + "\n{\"command_id\":\"huge\",\"pad\":\""));
        var chunk = new byte[1 << 20];
        Array.Fill(chunk, (byte)'a');
        for (long written = 0; written < HugeLineBytes; written += chunk.Length)
        {
            await file.WriteAsync(chunk.AsMemory(0, (int)Math.Min(chunk.Length, HugeLineBytes - written)));
        }

        // The last command keeps the process up a while: the memory sampler polls every 20 ms from
        // a cold start, and VmHWM is a high-water mark, so a late sample still sees the peak.
        await file.WriteAsync(Encoding.UTF8.GetBytes("\"}\n" + Command("last", "delay", """{"ms":1500}""") + "\n"));
    }
}
