using System.IO.Pipes;
using Pipeline.Tests.Sources.Support;

namespace Pipeline.Tests.Sources;

/// <summary>How the JSON Lines source splits, bounds and reports lines, from files and streams.</summary>
public sealed class JsonLinesSourceTests
{
    private static readonly TimeSpan Prompt = TimeSpan.FromSeconds(5);

    private static string Line(string id, int pad = 0) =>
        $$$"""{"command_id":"{{{id}}}","execution_id":1,"step":"s","tool_kind":"noop","input":{"pad":"{{{new string('a', pad)}}}"}}""";

    /// <summary>A command line exactly <paramref name="bytes"/> long.</summary>
    private static string LineOfLength(string id, int bytes) => Line(id, bytes - Line(id).Length);

    private static JsonLinesFileSource Open(string content, int maxLineBytes = JsonLinesSourceOptions.DefaultMaxLineBytes, int chunk = int.MaxValue) =>
        Open(Encoding.UTF8.GetBytes(content), maxLineBytes, chunk);

    private static JsonLinesFileSource Open(byte[] content, int maxLineBytes = JsonLinesSourceOptions.DefaultMaxLineBytes, int chunk = int.MaxValue) =>
        JsonLinesFileSource.Open(GeneratedStream.Of(content, chunk), "input", new JsonLinesSourceOptions { MaxLineBytes = maxLineBytes });

    /// <summary>Every outcome, as the command id or the failure reason.</summary>
    private static async Task<List<string>> Drain(JsonLinesFileSource source)
    {
        await using (source)
        {
            var seen = new List<string>();
            while (await source.NextAsync(CancellationToken.None).AsTask().WaitAsync(TimeSpan.FromSeconds(60)) is { } pulled)
            {
                seen.Add(pulled.Outcome.Kind == ClaimOutcomeKind.Claimed ? pulled.Outcome.Command!.CommandId : $"{pulled.Outcome.Kind}: {pulled.Outcome.Reason}");
                await source.AckAsync(pulled.Handle, CancellationToken.None);
            }

            return seen;
        }
    }

    [Fact]
    public async Task An_over_long_line_fails_naming_its_line_and_the_lines_around_it_are_read()
    {
        var content = string.Join("\r\n",
        [
            Line("one"),
            string.Empty,
            Line("two"),
            Line("huge", pad: 5_000),
            "  ",
            Line("three"),
            "{\"command_id\": \"broken\"",
            Line("four"),
        ]);

        var seen = await Drain(Open(content, maxLineBytes: 1_000));

        Assert.Equal(
        [
            "one",
            "two",
            "Failed: input line 4: line is longer than the limit of 1000 bytes (--max-line-bytes)",
            "three",
            seen[4],
            "four",
        ], seen);
        Assert.StartsWith("Failed: input line 7: malformed command", seen[4], StringComparison.Ordinal);
    }

    [Fact]
    public async Task The_default_limit_is_one_MiB_and_is_named_in_the_failure()
    {
        var seen = await Drain(Open($"{Line("big", pad: 1_048_576)}\n{Line("after")}\n"));

        Assert.Equal(["Failed: input line 1: line is longer than the limit of 1048576 bytes (--max-line-bytes)", "after"], seen);
    }

    [Theory]
    [InlineData(int.MaxValue)]
    [InlineData(1)]
    [InlineData(7)]
    public async Task A_line_exactly_at_the_limit_is_accepted_and_one_byte_more_is_not(int chunk)
    {
        const int limit = 300;
        var content = $"{LineOfLength("exact", limit)}\n{LineOfLength("exact-crlf", limit)}\r\n{LineOfLength("over", limit + 1)}\n{LineOfLength("over-crlf", limit + 1)}\r\n{Line("last")}";

        var seen = await Drain(Open(content, maxLineBytes: limit, chunk: chunk));

        Assert.Equal(
        [
            "exact",
            "exact-crlf",
            "Failed: input line 3: line is longer than the limit of 300 bytes (--max-line-bytes)",
            "Failed: input line 4: line is longer than the limit of 300 bytes (--max-line-bytes)",
            "last",
        ], seen);
    }

    [Theory]
    [InlineData(int.MaxValue)]
    [InlineData(1)]
    [InlineData(2)]
    public async Task A_byte_order_mark_is_skipped_and_line_endings_may_be_crlf_or_missing(int chunk)
    {
        byte[] content = [0xEF, 0xBB, 0xBF, .. Encoding.UTF8.GetBytes($"{Line("one")}\r\n\r\n{Line("two")}\n{Line("three")}")];

        Assert.Equal(["one", "two", "three"], await Drain(Open(content, chunk: chunk)));
    }

    [Fact]
    public async Task Short_inputs_end_cleanly()
    {
        Assert.Empty(await Drain(Open(string.Empty)));
        Assert.Empty(await Drain(Open([0xEF, 0xBB, 0xBF])));
        Assert.Empty(await Drain(Open("\n\r\n \n")));
        var malformed = Assert.Single(await Drain(Open("\n{")));
        Assert.StartsWith("Failed: input line 2: malformed command", malformed, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Whitespace_only_lines_are_skipped_and_counted()
    {
        // Blank as string.IsNullOrWhiteSpace saw it when lines were read as text: tabs, NBSP, ideographic space.
        var seen = await Drain(Open($"\t \n\u00A0\n\u3000 \r\n{Line("x")}\n{{\n"));

        Assert.Equal("x", seen[0]);
        Assert.StartsWith("Failed: input line 5: malformed command", seen[1], StringComparison.Ordinal);
    }

    [Fact]
    public async Task Invalid_utf8_is_a_malformed_line_not_an_exception()
    {
        var bad = Encoding.UTF8.GetBytes(Line("bad"));
        bad[16] = 0xFF; // inside the command id
        byte[] content = [.. Encoding.UTF8.GetBytes(Line("before") + "\n"), .. bad, (byte)'\n', 0xC3, (byte)'\n', .. Encoding.UTF8.GetBytes(Line("after"))];

        var seen = await Drain(Open(content));

        Assert.Equal(
        [
            "before",
            "Failed: input line 2: malformed command: the line is not valid UTF-8",
            "Failed: input line 3: malformed command: the line is not valid UTF-8",
            "after",
        ], seen);
    }

    [Fact]
    public async Task Lines_across_chunk_boundaries_are_read_whole()
    {
        // Lines of many lengths, so some straddle the reader's 64 KiB chunks wherever they fall.
        var lines = Enumerable.Range(0, 3_000).Select(i => Line($"c{i}", pad: i * 37 % 900)).ToList();

        var seen = await Drain(Open(string.Join('\n', lines) + "\n", chunk: 4_099));

        Assert.Equal(lines.Select((_, i) => $"c{i}"), seen);
    }

    [Fact]
    public async Task A_file_and_a_stream_read_the_same()
    {
        var path = Path.Combine(Path.GetTempPath(), $"pipeline-source-{Guid.NewGuid():N}.jsonl");
        var content = $"{Line("one")}\n\n{{\n{Line("two")}";
        await File.WriteAllTextAsync(path, content);
        try
        {
            var fromFile = await Drain(JsonLinesFileSource.Open(path));
            var fromStream = await Drain(Open(content));

            Assert.Equal(fromStream.Select(s => s.Replace("input line", Path.GetFileName(path) + " line", StringComparison.Ordinal)), fromFile);
            Assert.Equal(["one", "two"], fromFile.Where(s => !s.StartsWith("Failed", StringComparison.Ordinal)));
        }
        finally
        {
            File.Delete(path);
        }
    }

    [Theory]
    [InlineData(0)]
    [InlineData(-1)]
    [InlineData(JsonLinesSourceOptions.HardMaxLineBytes + 1)]
    public void An_out_of_range_limit_is_refused_naming_the_property(int value)
    {
        var error = Assert.Throws<ArgumentOutOfRangeException>(() => new JsonLinesSourceOptions { MaxLineBytes = value });

        Assert.Equal("MaxLineBytes", error.ParamName);
        Assert.Contains("between 1 and 67108864", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void The_defaults_are_documented_values()
    {
        var options = new JsonLinesSourceOptions();
        Assert.Equal(1_048_576, options.MaxLineBytes);
        Assert.Same(TimeProvider.System, options.TimeProvider);
        Assert.Equal(JsonLinesSourceOptions.HardMaxLineBytes, new JsonLinesSourceOptions { MaxLineBytes = 64 * 1024 * 1024 }.MaxLineBytes);
        Assert.Throws<ArgumentNullException>(() => new JsonLinesSourceOptions { TimeProvider = null! });
    }

    [Fact]
    public async Task A_stream_that_never_ends_lets_a_cancelled_pull_go_and_the_next_pull_resumes_the_read()
    {
        using var writer = new AnonymousPipeServerStream(PipeDirection.Out);
        var reader = new AnonymousPipeClientStream(PipeDirection.In, writer.ClientSafePipeHandle);
        await using var source = JsonLinesFileSource.Open(reader, "pipe");

        using var cts = new CancellationTokenSource(TimeSpan.FromMilliseconds(200));
        var clock = Stopwatch.StartNew();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(async () => await source.NextAsync(cts.Token));
        Assert.True(clock.Elapsed < Prompt, $"the cancelled pull took {clock.Elapsed}");

        // The read the cancelled pull started is still the one in progress; the next pull takes its bytes.
        await writer.WriteAsync(Encoding.UTF8.GetBytes(Line("late") + "\n"));
        await writer.FlushAsync();
        var pulled = (await source.NextAsync(CancellationToken.None).AsTask().WaitAsync(Prompt))!.Value;
        Assert.Equal("late", pulled.Outcome.Command!.CommandId);
    }

    [Fact]
    public async Task Disposing_stops_a_pull_waiting_on_a_stream_that_never_ends()
    {
        using var writer = new AnonymousPipeServerStream(PipeDirection.Out);
        var reader = new AnonymousPipeClientStream(PipeDirection.In, writer.ClientSafePipeHandle);
        var source = JsonLinesFileSource.Open(reader, "pipe");
        var pull = source.NextAsync(CancellationToken.None).AsTask();
        await Task.Delay(100);
        Assert.False(pull.IsCompleted);

        var clock = Stopwatch.StartNew();
        await source.DisposeAsync().AsTask().WaitAsync(Prompt);
        var error = await Assert.ThrowsAnyAsync<Exception>(() => pull.WaitAsync(Prompt));
        Assert.True(error is OperationCanceledException or ObjectDisposedException, error.ToString());
        Assert.True(clock.Elapsed < Prompt, $"dispose took {clock.Elapsed}");
        await Assert.ThrowsAsync<ObjectDisposedException>(async () => await source.NextAsync(CancellationToken.None));
    }
}
