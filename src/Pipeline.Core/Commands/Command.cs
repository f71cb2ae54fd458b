using System.Buffers;
using System.Collections.Frozen;
using System.Text;
using System.Text.Json;
using System.Text.Json.Serialization;
using System.Text.Unicode;

namespace Pipeline.Commands;

/// <summary>
/// One command the worker dispatches to a tool. The JSON names match the NoETL wire format
/// (<c>command_id</c>, <c>execution_id</c>, ...); unknown fields are ignored, a repeated field
/// (or a repeated <c>render_context</c> key) is malformed rather than "the last one wins".
/// </summary>
public sealed record Command
{
    private static readonly IReadOnlyDictionary<string, JsonElement> EmptyContext =
        FrozenDictionary<string, JsonElement>.Empty;

    /// <summary>Stable identifier of the command (a snowflake id or a UUID).</summary>
    [JsonPropertyName("command_id")]
    public required string CommandId { get; init; }

    /// <summary>The execution this command belongs to (a 64-bit id).</summary>
    [JsonPropertyName("execution_id")]
    public required long ExecutionId { get; init; }

    /// <summary>Step name from the playbook.</summary>
    [JsonPropertyName("step")]
    public required string Step { get; init; }

    /// <summary>The tool kind dispatch routes to (<c>noop</c>, <c>http</c>, ...).</summary>
    [JsonPropertyName("tool_kind")]
    public required string ToolKind { get; init; }

    /// <summary>Tool-specific input; any JSON value.</summary>
    [JsonPropertyName("input")]
    public required JsonElement Input { get; init; }

    /// <summary>Variables already rendered against the step context. Empty when absent.</summary>
    [JsonPropertyName("render_context")]
    public IReadOnlyDictionary<string, JsonElement> RenderContext { get; init; } = EmptyContext;

    /// <summary>How many times this command has been attempted before. 0 when absent.</summary>
    [JsonPropertyName("attempts")]
    public int Attempts { get; init; }

    /// <summary>Parses one command from UTF-8 JSON; throws <see cref="JsonException"/> with a clear message when malformed.</summary>
    public static Command Parse(ReadOnlySpan<byte> utf8Json) =>
        CommandReader.TryRead(utf8Json, EmptyContext) ?? ParseWithSerializer(utf8Json);

    /// <summary>The serializer's parse: every error and edge case of <see cref="Parse(ReadOnlySpan{byte})"/> is decided here.</summary>
    internal static Command ParseWithSerializer(ReadOnlySpan<byte> utf8Json)
    {
        // The serializer would say a string "could not be converted to System.String": say what is wrong.
        if (!Utf8.IsValid(utf8Json))
        {
            throw new JsonException($"A command must be valid UTF-8; byte {FirstInvalidUtf8(utf8Json)} is not.");
        }

        var command = JsonSerializer.Deserialize(utf8Json, CommandJsonContext.Default.Command)
            ?? throw new JsonException("A command must be a JSON object, not null.");
        return command.Validate();
    }

    /// <summary>Parses one command from JSON text.</summary>
    public static Command Parse(string json)
    {
        var command = JsonSerializer.Deserialize(json, CommandJsonContext.Default.Command)
            ?? throw new JsonException("A command must be a JSON object, not null.");
        return command.Validate();
    }

    private static int FirstInvalidUtf8(ReadOnlySpan<byte> utf8)
    {
        var at = 0;
        while (at < utf8.Length && Rune.DecodeFromUtf8(utf8[at..], out _, out var consumed) == OperationStatus.Done)
        {
            at += consumed;
        }

        return at;
    }

    /// <summary>Serializes this command with the wire names.</summary>
    public string ToJson() => JsonSerializer.Serialize(this, CommandJsonContext.Default.Command);

    private Command Validate()
    {
        // `required` rejects missing members; null or empty strings are rejected here so the
        // error names the field instead of surfacing later as a NullReferenceException.
        if (string.IsNullOrEmpty(CommandId))
        {
            throw new JsonException("command_id must be a non-empty string.");
        }

        if (string.IsNullOrEmpty(ToolKind))
        {
            throw new JsonException("tool_kind must be a non-empty string.");
        }

        if (Step is null)
        {
            throw new JsonException("step must be a string.");
        }

        if (Attempts < 0)
        {
            throw new JsonException("attempts must not be negative.");
        }

        return RenderContext is null ? this with { RenderContext = EmptyContext } : this;
    }
}

[JsonSourceGenerationOptions(NumberHandling = JsonNumberHandling.Strict, AllowDuplicateProperties = false)]
[JsonSerializable(typeof(Command))]
internal sealed partial class CommandJsonContext : JsonSerializerContext;
