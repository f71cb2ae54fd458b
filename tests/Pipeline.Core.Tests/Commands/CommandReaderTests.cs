namespace Pipeline.Tests.Commands;

/// <summary>The fast path of <see cref="Command.Parse(ReadOnlySpan{byte})"/> reads what the serializer reads, and leaves the rest to it.</summary>
public sealed class CommandReaderTests
{
    private static readonly IReadOnlyDictionary<string, JsonElement> Empty = new Dictionary<string, JsonElement>();

    public static TheoryData<string> Taken => new()
    {
        """{"command_id":"cmd-7","execution_id":0,"step":"step","tool_kind":"noop","input":{},"render_context":{},"attempts":0}""",
        """{"command_id": "c", "execution_id": 9007199254740993, "step": "", "tool_kind": "http", "input": {"url": "https://example.com", "n": [1, 2.5, null, true]}}""",
        """{"tool_kind":"echo","input":null,"step":"s","execution_id":-3,"command_id":"\u00e9t\u00e9","render_context":{"a.b":"v","k\"q":{"x":[1]}},"attempts":2}""",
        """ {"command_id":"c","execution_id":1,"step":"s","tool_kind":"noop","input":"text","trace":{"traceparent":"00-abc","deep":[[{}]]},"other":1} """,
        """{"command_id":"c","execution_id":1,"step":"s","tool_kind":"noop","input":[1,{"a":2}]}""",
    };

    public static TheoryData<string> LeftToTheSerializer => new()
    {
        // Missing, repeated, mistyped or rejected fields.
        """{"execution_id":1,"step":"s","tool_kind":"noop","input":{}}""",
        """{"command_id":"c","step":"s","tool_kind":"noop","input":{}}""",
        """{"command_id":"c","execution_id":1,"step":"s","tool_kind":"noop"}""",
        """{"command_id":"c","execution_id":"1","step":"s","tool_kind":"noop","input":{}}""",
        """{"command_id":"c","execution_id":1.5,"step":"s","tool_kind":"noop","input":{}}""",
        """{"command_id":"c","execution_id":1,"step":null,"tool_kind":"noop","input":{}}""",
        """{"command_id":"","execution_id":1,"step":"s","tool_kind":"noop","input":{}}""",
        """{"command_id":"c","execution_id":1,"step":"s","tool_kind":"","input":{}}""",
        """{"command_id":"c","execution_id":1,"step":"s","tool_kind":"noop","input":{},"attempts":-1}""",
        """{"command_id":"c","execution_id":1,"step":"s","tool_kind":"noop","input":{},"attempts":3000000000}""",
        """{"command_id":"c","command_id":"d","execution_id":1,"step":"s","tool_kind":"noop","input":{}}""",
        """{"command_id":"c","execution_id":1,"step":"s","tool_kind":"noop","input":{},"render_context":{"k":1,"k":2}}""",
        """{"command_id":"c","execution_id":1,"step":"s","tool_kind":"noop","input":{},"render_context":[1]}""",
        """{"command_id":"c","execution_id":1,"step":"s","tool_kind":"noop","input":{},"render_context":null}""",
        // An escaped property name, a non-object, malformed JSON, trailing content.
        """{"command\u005fid":"c","execution_id":1,"step":"s","tool_kind":"noop","input":{}}""",
        "null",
        "[1]",
        "{not json",
        """{"command_id":"c","execution_id":1,"step":"s","tool_kind":"noop","input":{}} x""",
        """{"command_id":"c","execution_id":1,"step":"s","tool_kind":"noop","input":{},}""",
        """{"command_id":"\ud800","execution_id":1,"step":"s","tool_kind":"noop","input":{}}""",
    };

    [Theory]
    [MemberData(nameof(Taken))]
    public void The_common_shapes_take_the_fast_path_and_read_as_the_serializer_does(string json)
    {
        var bytes = Encoding.UTF8.GetBytes(json);
        var fast = CommandReader.TryRead(bytes, Empty);
        var slow = Command.ParseWithSerializer(bytes);

        Assert.NotNull(fast);
        Assert.Equal(slow.ToJson(), fast.ToJson());
        Assert.Equal(slow.RenderContext.Count, fast.RenderContext.Count);
        Assert.Equal(slow.Input.ValueKind, fast.Input.ValueKind);
    }

    [Theory]
    [MemberData(nameof(LeftToTheSerializer))]
    public void Anything_unusual_is_left_to_the_serializer(string json)
    {
        var bytes = Encoding.UTF8.GetBytes(json);

        Assert.Null(CommandReader.TryRead(bytes, Empty));
        var serializer = Record.Exception(() => Command.ParseWithSerializer(bytes));
        var parse = Record.Exception(() => Command.Parse(bytes));
        Assert.Equal(serializer?.GetType(), parse?.GetType());
        Assert.Equal(serializer?.Message, parse?.Message);
    }

    [Fact]
    public void An_empty_render_context_is_the_shared_empty_one()
    {
        var command = Command.Parse("""{"command_id":"c","execution_id":1,"step":"s","tool_kind":"noop","input":{},"render_context":{}}"""u8);

        Assert.Same(Command.Parse("""{"command_id":"d","execution_id":1,"step":"s","tool_kind":"noop","input":{}}"""u8).RenderContext, command.RenderContext);
    }
}
