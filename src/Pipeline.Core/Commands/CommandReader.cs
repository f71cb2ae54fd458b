using System.Text.Json;

namespace Pipeline.Commands;

/// <summary>
/// A fast path for <see cref="Command.Parse(ReadOnlySpan{byte})"/>: one pass of a
/// <see cref="Utf8JsonReader"/> over the common shape of a command. The serializer's path costs
/// about three times the time and the bytes (an argument state per object, a dictionary for an
/// empty <c>render_context</c>), and decoding was the largest single cost per message of the NATS
/// source. Anything unusual (a missing or repeated field, a wrong token type, an escaped property
/// name, a value the checks would reject, malformed JSON) returns null, and the caller parses with
/// the serializer: errors, messages and every edge case stay the serializer's.
/// </summary>
internal static class CommandReader
{
    private const int CommandIdSeen = 1;
    private const int ExecutionIdSeen = 2;
    private const int StepSeen = 4;
    private const int ToolKindSeen = 8;
    private const int InputSeen = 16;
    private const int RenderContextSeen = 32;
    private const int AttemptsSeen = 64;
    private const int Required = CommandIdSeen | ExecutionIdSeen | StepSeen | ToolKindSeen | InputSeen;

    public static Command? TryRead(ReadOnlySpan<byte> utf8Json, IReadOnlyDictionary<string, JsonElement> emptyContext)
    {
        // The reader passes invalid UTF-8 inside a value it skips or keeps as a JsonElement (the
        // tool's input), which then reached the tool with U+FFFD in place of the bad bytes: the
        // serializer's path reports it instead. Vectorized, a few nanoseconds per command.
        if (!System.Text.Unicode.Utf8.IsValid(utf8Json))
        {
            return null;
        }

        try
        {
            return Read(utf8Json, emptyContext);
        }
        catch (Exception ex) when (ex is JsonException or InvalidOperationException)
        {
            return null; // the serializer reports it (InvalidOperationException: a string that is not valid UTF-16)
        }
    }

    private static Command? Read(ReadOnlySpan<byte> utf8Json, IReadOnlyDictionary<string, JsonElement> emptyContext)
    {
        var reader = new Utf8JsonReader(utf8Json);
        if (!reader.Read() || reader.TokenType != JsonTokenType.StartObject)
        {
            return null;
        }

        string? commandId = null, step = null, toolKind = null;
        long executionId = 0;
        var attempts = 0;
        JsonElement input = default;
        IReadOnlyDictionary<string, JsonElement> renderContext = emptyContext;
        var seen = 0;
        while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
        {
            if (reader.ValueIsEscaped)
            {
                return null;
            }

            var field = Field(ref reader);
            if (!reader.Read() || (seen & field) != 0)
            {
                return null;
            }

            seen |= field;
            switch (field)
            {
                case 0:
                    reader.Skip(); // an unknown field
                    break;
                case CommandIdSeen when reader.TokenType == JsonTokenType.String:
                    commandId = reader.GetString();
                    break;
                case StepSeen when reader.TokenType == JsonTokenType.String:
                    step = reader.GetString();
                    break;
                case ToolKindSeen when reader.TokenType == JsonTokenType.String:
                    toolKind = reader.GetString();
                    break;
                case ExecutionIdSeen when reader.TokenType == JsonTokenType.Number && reader.TryGetInt64(out executionId):
                    break;
                case AttemptsSeen when reader.TokenType == JsonTokenType.Number && reader.TryGetInt32(out attempts) && attempts >= 0:
                    break;
                case InputSeen:
                    input = JsonElement.ParseValue(ref reader);
                    break;
                case RenderContextSeen when reader.TokenType == JsonTokenType.StartObject:
                    if (ReadContext(ref reader) is not { } context)
                    {
                        return null;
                    }

                    renderContext = context.Count == 0 ? emptyContext : context;
                    break;
                default:
                    return null;
            }
        }

        // The object must have ended with nothing after it, every required field present and non-empty where the checks want it.
        if (reader.TokenType != JsonTokenType.EndObject || reader.Read() || (seen & Required) != Required
            || string.IsNullOrEmpty(commandId) || string.IsNullOrEmpty(toolKind) || step is null)
        {
            return null;
        }

        return new Command
        {
            CommandId = commandId,
            ExecutionId = executionId,
            Step = step,
            ToolKind = toolKind,
            Input = input,
            RenderContext = renderContext,
            Attempts = attempts,
        };
    }

    private static int Field(ref Utf8JsonReader reader)
    {
        var name = reader.ValueSpan;
        return name.Length switch
        {
            4 when name.SequenceEqual("step"u8) => StepSeen,
            5 when name.SequenceEqual("input"u8) => InputSeen,
            8 when name.SequenceEqual("attempts"u8) => AttemptsSeen,
            9 when name.SequenceEqual("tool_kind"u8) => ToolKindSeen,
            10 when name.SequenceEqual("command_id"u8) => CommandIdSeen,
            12 when name.SequenceEqual("execution_id"u8) => ExecutionIdSeen,
            14 when name.SequenceEqual("render_context"u8) => RenderContextSeen,
            _ => 0,
        };
    }

    private static Dictionary<string, JsonElement>? ReadContext(ref Utf8JsonReader reader)
    {
        Dictionary<string, JsonElement>? context = null;
        while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
        {
            var key = reader.GetString()!;
            if (!reader.Read())
            {
                return null;
            }

            var value = JsonElement.ParseValue(ref reader);
            if (!(context ??= []).TryAdd(key, value))
            {
                return null; // a repeated key: the serializer decides
            }
        }

        return reader.TokenType == JsonTokenType.EndObject ? context ?? [] : null;
    }
}
