using System.Text.Json;

namespace Pipeline.Tools;

/// <summary>Thrown when a command's <c>input</c> does not fit its tool; reported as a non-retryable failure.</summary>
public sealed class ToolInputException : Exception
{
    /// <summary>Creates the exception.</summary>
    public ToolInputException()
    {
    }

    /// <summary>Creates the exception with a message.</summary>
    public ToolInputException(string message)
        : base(message)
    {
    }

    /// <summary>Creates the exception with a message and a cause.</summary>
    public ToolInputException(string message, Exception innerException)
        : base(message, innerException)
    {
    }
}

/// <summary>Reads fields of a tool's JSON input with errors that name the tool and the field.</summary>
internal static class ToolInput
{
    public static JsonElement RequireObject(string tool, JsonElement input) =>
        input.ValueKind == JsonValueKind.Object
            ? input
            : throw new ToolInputException($"{tool}: input must be a JSON object, not {Describe(input)}.");

    public static string RequireString(string tool, JsonElement input, string name) =>
        OptionalString(tool, input, name) ?? throw new ToolInputException($"{tool}: input.{name} is required.");

    public static string? OptionalString(string tool, JsonElement input, string name)
    {
        if (!input.TryGetProperty(name, out var value) || value.ValueKind == JsonValueKind.Null)
        {
            return null;
        }

        return value.ValueKind == JsonValueKind.String
            ? value.GetString()
            : throw new ToolInputException($"{tool}: input.{name} must be a string, not {Describe(value)}.");
    }

    public static long? OptionalNonNegativeInteger(string tool, JsonElement input, string name)
    {
        if (!input.TryGetProperty(name, out var value) || value.ValueKind == JsonValueKind.Null)
        {
            return null;
        }

        return value.ValueKind == JsonValueKind.Number && value.TryGetInt64(out var n) && n >= 0
            ? n
            : throw new ToolInputException($"{tool}: input.{name} must be a non-negative integer, not {value.GetRawText()}.");
    }

    public static IReadOnlyList<string> OptionalStringArray(string tool, JsonElement input, string name)
    {
        if (!input.TryGetProperty(name, out var value) || value.ValueKind == JsonValueKind.Null)
        {
            return [];
        }

        if (value.ValueKind != JsonValueKind.Array)
        {
            throw new ToolInputException($"{tool}: input.{name} must be an array of strings, not {Describe(value)}.");
        }

        var items = new List<string>(value.GetArrayLength());
        foreach (var item in value.EnumerateArray())
        {
            items.Add(item.ValueKind == JsonValueKind.String
                ? item.GetString()!
                : throw new ToolInputException($"{tool}: input.{name} must contain only strings, not {Describe(item)}."));
        }

        return items;
    }

    public static IReadOnlyList<KeyValuePair<string, string>> OptionalStringMap(string tool, JsonElement input, string name)
    {
        if (!input.TryGetProperty(name, out var value) || value.ValueKind == JsonValueKind.Null)
        {
            return [];
        }

        if (value.ValueKind != JsonValueKind.Object)
        {
            throw new ToolInputException($"{tool}: input.{name} must be an object of strings, not {Describe(value)}.");
        }

        var pairs = new List<KeyValuePair<string, string>>();
        foreach (var property in value.EnumerateObject())
        {
            pairs.Add(new(property.Name, property.Value.ValueKind == JsonValueKind.String
                ? property.Value.GetString()!
                : throw new ToolInputException($"{tool}: input.{name}.{property.Name} must be a string, not {Describe(property.Value)}.")));
        }

        return pairs;
    }

    private static string Describe(JsonElement value) => value.ValueKind switch
    {
        JsonValueKind.Undefined => "missing",
        var kind => kind.ToString().ToLowerInvariant(),
    };
}
