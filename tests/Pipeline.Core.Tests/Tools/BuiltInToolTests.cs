namespace Pipeline.Tests.Tools;

public sealed class BuiltInToolTests
{
    [Fact]
    public void The_built_in_registry_has_shell_only_when_enabled()
    {
        var plain = ToolRegistry.CreateBuiltIn();
        var withShell = ToolRegistry.CreateBuiltIn(new BuiltInToolOptions { EnableShell = true });

        foreach (var kind in new[] { "noop", "delay", "echo", "http" })
        {
            Assert.True(plain.TryGet(kind, out _), kind);
        }

        Assert.False(plain.TryGet("shell", out _));
        Assert.True(withShell.TryGet("shell", out var shell));
        Assert.Equal("shell", shell.Kind);
    }

    [Fact]
    public void Two_tools_of_one_kind_are_refused()
    {
        var ex = Assert.Throws<ArgumentException>(() => new ToolRegistry([new NoopTool(), new NoopTool()]));

        Assert.Contains("noop", ex.Message);
    }

    [Fact]
    public async Task Echo_returns_its_input()
    {
        var command = TestCommands.Make("e", "echo", """{"code": "1 + 1", "n": [1, 2]}""");

        var result = await new EchoTool().InvokeAsync(command, default);

        Assert.True(result.IsSuccess);
        Assert.Equal("""{"code": "1 + 1", "n": [1, 2]}""", result.Value.GetRawText());
    }

    [Fact]
    public async Task Delay_completes_only_when_its_time_has_passed()
    {
        var time = new FakeTimeProvider();
        var pending = new DelayTool(time).InvokeAsync(TestCommands.Make("d", "delay", """{"ms": 10}"""), default).AsTask();

        time.Advance(TimeSpan.FromMilliseconds(9));
        Assert.False(pending.IsCompleted);
        time.Advance(TimeSpan.FromMilliseconds(1));

        Assert.True((await pending).IsSuccess);
    }

    [Fact]
    public async Task Delay_of_zero_completes_at_once()
    {
        var pending = new DelayTool(new FakeTimeProvider()).InvokeAsync(TestCommands.Make("d", "delay", """{"ms": 0}"""), default);

        Assert.True(pending.IsCompletedSuccessfully);
        Assert.True((await pending).IsSuccess);
    }

    [Fact]
    public async Task Delay_stops_when_cancelled()
    {
        using var cts = new CancellationTokenSource();
        var pending = new DelayTool(new FakeTimeProvider()).InvokeAsync(TestCommands.Make("d", "delay", """{"ms": 60000}"""), cts.Token).AsTask();

        await cts.CancelAsync();

        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => pending);
    }

    [Theory]
    [InlineData("""{}""", "delay: input.ms is required.")]
    [InlineData("""{"ms": -5}""", "delay: input.ms must be a non-negative integer, not -5.")]
    [InlineData("""{"ms": "10"}""", "delay: input.ms must be a non-negative integer")]
    [InlineData("""5""", "delay: input must be a JSON object")]
    public async Task Delay_rejects_bad_input_with_a_clear_message(string input, string expected)
    {
        var ex = await Assert.ThrowsAsync<ToolInputException>(async () => await new DelayTool().InvokeAsync(TestCommands.Make("d", "delay", input), default));

        Assert.StartsWith(expected, ex.Message);
    }
}
