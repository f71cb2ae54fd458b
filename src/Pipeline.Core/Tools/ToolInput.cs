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

    /// <summary>The longest wait a tool accepts, in milliseconds: <see cref="int.MaxValue"/> (about 24.8 days).</summary>
    public const long MaxMilliseconds = int.MaxValue;

    /// <summary>A whole number of milliseconds from 0 to <see cref="MaxMilliseconds"/>.</summary>
    public static long? OptionalMilliseconds(string tool, JsonElement input, string name) =>
        OptionalInteger(tool, input, name, 0, MaxMilliseconds, " ms (about 24.8 days)");

    /// <summary>
    /// A per-command output limit from 1 to <paramref name="runLimit"/>, the run's
    /// <c>MaxOutputBytes</c>; <paramref name="runLimit"/> when absent.
    /// </summary>
    public static int OutputLimit(string tool, JsonElement input, string name, int runLimit)
    {
        if (input.TryGetProperty(name, out var value) && value.ValueKind == JsonValueKind.Number
            && value.TryGetDouble(out var requested) && requested > runLimit)
        {
            throw new ToolInputException(
                $"{tool}: input.{name} is {value.GetRawText()}, above this run's output limit of {runLimit} bytes.");
        }

        return (int?)OptionalInteger(tool, input, name, 1, runLimit, " bytes") ?? runLimit;
    }

    /// <summary>An integer from <paramref name="min"/> (0 or 1) to <paramref name="max"/>, or null when absent.</summary>
    public static long? OptionalInteger(string tool, JsonElement input, string name, long min, long max, string unit = "")
    {
        if (!input.TryGetProperty(name, out var value) || value.ValueKind == JsonValueKind.Null)
        {
            return null;
        }

        if (value.ValueKind == JsonValueKind.Number)
        {
            if (value.TryGetInt64(out var n) && n >= min && n <= max)
            {
                return n;
            }

            // Too large, whatever its notation (10^12, 1e30): say what the most is.
            if (value.TryGetDouble(out var d) && d > max)
            {
                throw new ToolInputException($"{tool}: input.{name} must be at most {max}{unit}, not {value.GetRawText()}.");
            }
        }

        var kind = min > 0 ? "a positive integer" : "a non-negative integer";
        throw new ToolInputException($"{tool}: input.{name} must be {kind}, not {value.GetRawText()}.");
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
