namespace Pipeline.Tests.Commands;

public sealed class CommandJsonTests
{
    // Ported from the seed: command_round_trips_through_serde_with_defaults.
    [Fact]
    public void Missing_render_context_and_attempts_take_their_defaults()
    {
        var command = Command.Parse("""
            {"command_id": "cmd-1", "execution_id": 7, "step": "s", "tool_kind": "http",
             "input": {"url": "https://example.com"}}
            """);

        Assert.Empty(command.RenderContext);
        Assert.Equal(0, command.Attempts);
        Assert.Equal("cmd-1", command.CommandId);
        Assert.Equal(7L, command.ExecutionId);
        Assert.Equal("https://example.com", command.Input.GetProperty("url").GetString());
    }

    // Ported from the seed: command_round_trips_through_serde_with_full_fields.
    [Fact]
    public void Full_fields_are_read()
    {
        var command = Command.Parse("""
            {"command_id": "cmd-2", "execution_id": 12345, "step": "process", "tool_kind": "rhai",
             "input": {"code": "1 + 1"}, "render_context": {"workload.region": "us-east-1"}, "attempts": 3}
            """);

        Assert.Equal(3, command.Attempts);
        Assert.Equal("process", command.Step);
        Assert.Equal("rhai", command.ToolKind);
        Assert.Equal("us-east-1", command.RenderContext["workload.region"].GetString());
    }

    [Fact]
    public void Unknown_fields_are_ignored()
    {
        var command = Command.Parse("""
            {"command_id": "c", "execution_id": 1, "step": "s", "tool_kind": "noop", "input": null,
             "server_url": "http://127.0.0.1:8082", "trace": {"traceparent": "00-abc"}}
            """);

        Assert.Equal("c", command.CommandId);
        Assert.Equal(JsonValueKind.Null, command.Input.ValueKind);
    }

    [Fact]
    public void Execution_id_keeps_all_64_bits()
    {
        // 2^53 + 1 is not representable as a double: a lossy parser would read 9007199254740992.
        var command = Command.Parse("""
            {"command_id": "c", "execution_id": 9007199254740993, "step": "s", "tool_kind": "noop", "input": {}}
            """);

        Assert.Equal(9007199254740993L, command.ExecutionId);
    }

    [Fact]
    public void Round_trip_writes_the_wire_names_and_reads_back_equal_values()
    {
        const string json = """
            {"command_id":"cmd-9","execution_id":42,"step":"load","tool_kind":"echo","input":{"a":[1,2]},"render_context":{"k":"v"},"attempts":2}
            """;
        var first = Command.Parse(json);
        var written = first.ToJson();
        using var document = JsonDocument.Parse(written);
        var root = document.RootElement;

        Assert.Equal("cmd-9", root.GetProperty("command_id").GetString());
        Assert.Equal(42, root.GetProperty("execution_id").GetInt64());
        Assert.Equal("load", root.GetProperty("step").GetString());
        Assert.Equal("echo", root.GetProperty("tool_kind").GetString());
        Assert.Equal("""{"a":[1,2]}""", root.GetProperty("input").GetRawText());
        Assert.Equal("v", root.GetProperty("render_context").GetProperty("k").GetString());
        Assert.Equal(2, root.GetProperty("attempts").GetInt32());

        var second = Command.Parse(written);
        Assert.Equal(first.ToJson(), second.ToJson());
    }

    [Theory]
    [InlineData("""{"execution_id": 1, "step": "s", "tool_kind": "noop", "input": {}}""", "command_id")]
    [InlineData("""{"command_id": "c", "step": "s", "tool_kind": "noop", "input": {}}""", "execution_id")]
    [InlineData("""{"command_id": "c", "execution_id": 1, "tool_kind": "noop", "input": {}}""", "step")]
    [InlineData("""{"command_id": "c", "execution_id": 1, "step": "s", "input": {}}""", "tool_kind")]
    [InlineData("""{"command_id": "c", "execution_id": 1, "step": "s", "tool_kind": "noop"}""", "input")]
    [InlineData("""{"command_id": "c", "execution_id": "12", "step": "s", "tool_kind": "noop", "input": {}}""", "execution_id")]
    [InlineData("""{"command_id": "", "execution_id": 1, "step": "s", "tool_kind": "noop", "input": {}}""", "command_id")]
    [InlineData("""{"command_id": "c", "execution_id": 1, "step": "s", "tool_kind": "noop", "input": {}, "attempts": -1}""", "attempts")]
    public void Malformed_commands_fail_naming_the_field(string json, string field)
    {
        var error = Assert.ThrowsAny<JsonException>(() => Command.Parse(json));
        Assert.Contains(field, error.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("null")]
    [InlineData("[1]")]
    [InlineData("{not json")]
    public void Non_objects_are_rejected(string json)
    {
        Assert.ThrowsAny<JsonException>(() => Command.Parse(json));
    }

    [Theory]
    [InlineData("""{"command_id": "a", "command_id": "b", "execution_id": 1, "step": "s", "tool_kind": "noop", "input": {}}""", "command_id")]
    [InlineData("""{"command_id": "a", "execution_id": 1, "step": "s", "tool_kind": "noop", "tool_kind": "shell", "input": {}}""", "tool_kind")]
    [InlineData("""{"command_id": "a", "execution_id": 1, "step": "s", "tool_kind": "noop", "input": {}, "render_context": {"k": 1, "k": 2}}""", "Duplicate")]
    public void A_repeated_field_is_malformed_not_last_one_wins(string json, string repeated)
    {
        var bytes = System.Text.Encoding.UTF8.GetBytes(json);

        var error = Assert.Throws<JsonException>(() => Command.Parse(bytes));

        Assert.Contains("Duplicate", error.Message, StringComparison.Ordinal);
        Assert.Contains(repeated, error.Message, StringComparison.Ordinal);
        Assert.Throws<JsonException>(() => Command.Parse(json));
    }

    [Fact]
    public void Invalid_utf8_is_reported_as_invalid_utf8_with_its_byte_offset()
    {
        byte[] bytes = [.. "{\"command_id\": \"a"u8, 0xC3, 0x28, .. "\", \"execution_id\": 1, \"step\": \"s\", \"tool_kind\": \"noop\", \"input\": {}}"u8];

        var error = Assert.Throws<JsonException>(() => Command.Parse(bytes));

        Assert.Equal("A command must be valid UTF-8; byte 17 is not.", error.Message);
    }

    /// <summary>Invalid UTF-8 inside the tool's input (a value the fast reader keeps whole) is malformed, not passed on with U+FFFD in place of the bad bytes.</summary>
    [Fact]
    public void Invalid_utf8_inside_the_input_is_malformed_not_replaced()
    {
        byte[] bytes = [.. "{\"command_id\": \"a\", \"execution_id\": 1, \"step\": \"s\", \"tool_kind\": \"echo\", \"input\": {\"message\": \"bad"u8, 0xC3, 0x28, .. "\"}}"u8];

        var error = Assert.Throws<JsonException>(() => Command.Parse(bytes));

        Assert.StartsWith("A command must be valid UTF-8", error.Message, StringComparison.Ordinal);
    }
}
