namespace Pipeline.Tests.Tools;

/// <summary>The output limit: the capped buffer itself, the run option, echo's cap, delay's range.</summary>
public sealed class OutputLimitTests
{
    private static async Task<BoundedOutput> Read(byte[] bytes, int limit, bool drain)
    {
        var output = new BoundedOutput(limit);

        // A stream that hands out a few bytes per read, as a pipe does.
        await output.ReadFromAsync(new TricklingStream(bytes, 7), drain, default);
        return output;
    }

    [Fact]
    public async Task The_buffer_keeps_the_limit_drains_the_rest_and_counts_it()
    {
        var input = Enumerable.Range(0, 100_000).Select(i => (byte)('a' + (i % 26))).ToArray();
        using var output = await Read(input, 10_000, drain: true);

        Assert.Equal(Encoding.ASCII.GetString(input, 0, 10_000), output.Decode());
        Assert.True(output.Truncated);
        Assert.Equal(100_000, output.TotalBytes);
    }

    [Fact]
    public async Task Without_draining_the_buffer_stops_one_read_past_the_limit()
    {
        var stream = new TricklingStream(new byte[100_000], 1000);
        using var output = new BoundedOutput(5000);

        await output.ReadFromAsync(stream, drainPastLimit: false, default);

        Assert.True(output.Truncated);
        Assert.True(stream.Position <= 5000 + 1000, $"read {stream.Position}");
    }

    [Fact]
    public async Task Input_of_exactly_the_limit_is_not_truncated()
    {
        using var output = await Read(new byte[4096], 4096, drain: false);

        Assert.False(output.Truncated);
        Assert.Equal(4096, output.TotalBytes);
    }

    [Theory]
    [InlineData(1, "")] // the first byte of a 2-byte character
    [InlineData(2, "\u00e9")]
    [InlineData(3, "\u00e9")] // the first byte of a 3-byte character
    [InlineData(4, "\u00e9")]
    [InlineData(5, "\u00e9\u20ac")]
    [InlineData(6, "\u00e9\u20ac")] // the first byte of a 4-byte character
    [InlineData(8, "\u00e9\u20ac")]
    public async Task A_character_cut_at_the_limit_is_dropped(int limit, string expected)
    {
        using var output = await Read(Encoding.UTF8.GetBytes("\u00e9\u20ac\U0001F600!"), limit, drain: true);

        Assert.Equal(expected, output.Decode());
    }

    [Fact]
    public async Task Invalid_bytes_in_an_untruncated_output_still_show_as_replacement_characters()
    {
        using var output = await Read([0x61, 0xC3], 100, drain: true);

        Assert.Equal("a\uFFFD", output.Decode());
    }

    [Theory]
    [InlineData(0)]
    [InlineData(-1)]
    [InlineData(BuiltInToolOptions.HardMaxOutputBytes + 1)]
    public void MaxOutputBytes_out_of_range_is_refused_naming_the_property(int value)
    {
        var ex = Assert.Throws<ArgumentOutOfRangeException>(() => new BuiltInToolOptions { MaxOutputBytes = value });

        Assert.Equal("MaxOutputBytes", ex.ParamName);
        Assert.Contains("from 1 to 16777216", ex.Message);
    }

    [Fact]
    public void MaxOutputBytes_defaults_to_64_KiB_and_accepts_the_hard_maximum()
    {
        Assert.Equal(65_536, new BuiltInToolOptions().MaxOutputBytes);
        Assert.Equal(16 * 1024 * 1024, new BuiltInToolOptions { MaxOutputBytes = BuiltInToolOptions.HardMaxOutputBytes }.MaxOutputBytes);
    }

    [Fact]
    public async Task The_run_limit_reaches_the_built_in_tools()
    {
        var registry = ToolRegistry.CreateBuiltIn(new BuiltInToolOptions { MaxOutputBytes = 10 });
        Assert.True(registry.TryGet("echo", out var echo));

        var result = await echo.InvokeAsync(TestCommands.Make("e", "echo", """{"text": "longer than ten bytes"}"""), default);

        Assert.True(result.Value.GetProperty("truncated").GetBoolean());
    }

    [Fact]
    public async Task Echo_of_an_input_over_the_limit_says_so_instead_of_copying_it()
    {
        var input = $$"""{"text": "{{new string('x', 200)}}"}""";

        var result = await new EchoTool(100).InvokeAsync(TestCommands.Make("e", "echo", input), default);

        Assert.True(result.IsSuccess);
        Assert.Equal("""{"truncated":true,"input_bytes":212}""", result.Value.GetRawText());
    }

    [Fact]
    public async Task Echo_of_an_input_within_the_limit_returns_it_as_it_was()
    {
        var result = await new EchoTool(12).InvokeAsync(TestCommands.Make("e", "echo", """{"a": [1,2]}"""), default);

        Assert.Equal("""{"a": [1,2]}""", result.Value.GetRawText());
    }

    [Theory]
    [InlineData("""{"ms": 1000000000000}""", "delay: input.ms must be at most 2147483647 ms (about 24.8 days), not 1000000000000.")]
    [InlineData("""{"ms": 2147483648}""", "delay: input.ms must be at most 2147483647 ms (about 24.8 days), not 2147483648.")]
    [InlineData("""{"ms": 1e300}""", "delay: input.ms must be at most 2147483647 ms (about 24.8 days), not 1e300.")]
    [InlineData("""{"ms": 99999999999999999999999}""", "delay: input.ms must be at most 2147483647 ms (about 24.8 days), not 99999999999999999999999.")]
    [InlineData("""{"ms": 1.5}""", "delay: input.ms must be a non-negative integer, not 1.5.")]
    [InlineData("""{"ms": [1]}""", "delay: input.ms must be a non-negative integer, not [1].")]
    [InlineData("""{"ms": null}""", "delay: input.ms is required.")]
    public async Task Delay_out_of_range_or_of_the_wrong_type_is_a_ToolInputException(string input, string expected)
    {
        var ex = await Assert.ThrowsAsync<ToolInputException>(async () => await new DelayTool().InvokeAsync(TestCommands.Make("d", "delay", input), default));

        Assert.Equal(expected, ex.Message);
    }

    [Fact]
    public async Task Delay_of_the_stated_maximum_is_accepted()
    {
        using var cts = new CancellationTokenSource();
        var pending = new DelayTool().InvokeAsync(TestCommands.Make("d", "delay", """{"ms": 2147483647}"""), cts.Token).AsTask();

        await cts.CancelAsync();

        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => pending);
    }

    private sealed class TricklingStream(byte[] data, int chunk) : MemoryStream(data)
    {
        public override ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default) =>
            base.ReadAsync(buffer[..Math.Min(buffer.Length, chunk)], cancellationToken);
    }
}
