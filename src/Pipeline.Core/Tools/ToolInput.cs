using System.Diagnostics.CodeAnalysis;
using System.Text.Json;
using System.Text.Json.Serialization;
using System.Text.Json.Serialization.Metadata;
using Pipeline.Dispatch;

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

/// <summary>
/// Reads a tool's JSON input with errors that name the tool and the field: each check throws a
/// <see cref="ToolInputException"/>, which fails the command for good (not retryable), e.g.
/// <c>upper: input.text must be a string, not number.</c>. For an <see cref="ITool"/> of your
/// own (check <see cref="RequireObject"/> first: the member readers expect an object); a
/// <see cref="PipelineTool{TInput}"/> gets its input bound by <see cref="Bind"/> instead.
/// </summary>
public static class ToolInput
{
    /// <summary>
    /// The reflection-based binding of a <see cref="PipelineTool{TInput}"/> without source-generated
    /// metadata: snake_case members, case-sensitive, numbers only from JSON numbers, nullable
    /// annotations and required constructor parameters respected, repeated members refused.
    /// </summary>
    internal static JsonSerializerOptions StrictOptions { get; } = CreateStrictOptions();

    /// <summary>
    /// Binds <paramref name="input"/> to <typeparamref name="T"/> with <paramref name="typeInfo"/>
    /// (source-generated, or from options of your own). What does not bind is a
    /// <see cref="ToolInputException"/> naming <paramref name="tool"/> and the member where
    /// System.Text.Json says it (<c>upper: input.text: Cannot get the value of a token type
    /// 'Number' as a string.</c>); so is a missing or <c>null</c> input.
    /// </summary>
    public static T Bind<T>(string tool, JsonElement input, JsonTypeInfo<T> typeInfo)
    {
        ArgumentNullException.ThrowIfNull(typeInfo);
        if (input.ValueKind is JsonValueKind.Undefined or JsonValueKind.Null)
        {
            throw new ToolInputException($"{tool}: input is required, not {Describe(input)}.");
        }

        T? value;
        try
        {
            value = input.Deserialize(typeInfo);
        }
        catch (JsonException ex)
        {
            throw new ToolInputException(Explain(tool, ex), ex);
        }

        return value ?? throw new ToolInputException($"{tool}: input is required, not null.");
    }

    /// <summary>The input itself, when it is a JSON object.</summary>
    public static JsonElement RequireObject(string tool, JsonElement input) =>
        input.ValueKind == JsonValueKind.Object
            ? input
            : throw new ToolInputException($"{tool}: input must be a JSON object, not {Describe(input)}.");

    /// <summary>A string member that must be there (and not null).</summary>
    public static string RequireString(string tool, JsonElement input, string name) =>
        OptionalString(tool, input, name) ?? throw new ToolInputException($"{tool}: input.{name} is required.");

    /// <summary>A string member, or null when absent or null.</summary>
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

    /// <summary>A whole number of milliseconds from 0 to <see cref="MaxMilliseconds"/>, or null when absent or null.</summary>
    public static long? OptionalMilliseconds(string tool, JsonElement input, string name) =>
        OptionalInteger(tool, input, name, 0, MaxMilliseconds, " ms (about 24.8 days)");

    /// <summary>
    /// A per-command output limit from 1 to <paramref name="runLimit"/>, the run's
    /// <c>MaxOutputBytes</c>; <paramref name="runLimit"/> when absent.
    /// </summary>
    internal static int OutputLimit(string tool, JsonElement input, string name, int runLimit)
    {
        if (input.TryGetProperty(name, out var value) && value.ValueKind == JsonValueKind.Number
            && value.TryGetDouble(out var requested) && requested > runLimit)
        {
            throw new ToolInputException(
                $"{tool}: input.{name} is {value.GetRawText()}, above this run's output limit of {runLimit} bytes.");
        }

        return (int?)OptionalInteger(tool, input, name, 1, runLimit, " bytes") ?? runLimit;
    }

    /// <summary>
    /// An integer from <paramref name="min"/> (0 or 1) to <paramref name="max"/>, or null when absent
    /// or null; <paramref name="unit"/> follows the most in the message (<c>" ms"</c>).
    /// </summary>
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

    /// <summary>An array of strings, or empty when absent or null.</summary>
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

    /// <summary>An object of strings, as name/value pairs in their order, or empty when absent or null.</summary>
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

    /// <summary>
    /// <c>tool: input.member: reason</c>. The path is System.Text.Json's with <c>$</c> as <c>input</c>;
    /// the reason is the inner error when it says what was wrong with the value (its JSON type, a
    /// number out of range), which the outer one does not. Line and byte positions are left out:
    /// they count within the input, not the command's line.
    /// </summary>
    private static string Explain(string tool, JsonException ex)
    {
        var where = ex.Path is ['$', .. var rest] ? "input" + rest : "input";
        var reason = ex.InnerException is InvalidOperationException or FormatException or OverflowException
            ? ex.InnerException.Message
            : ex.Message;
        var path = reason.IndexOf(" Path: ", StringComparison.Ordinal);
        if (path >= 0)
        {
            reason = reason[..path];
        }

        return $"{tool}: {where}: {reason}";
    }

    [UnconditionalSuppressMessage("Trimming", "IL2026", Justification = "Reflection-based binding is the documented fallback; a tool under trimming supplies its JsonTypeInfo.")]
    [UnconditionalSuppressMessage("AOT", "IL3050", Justification = "As above.")]
    private static JsonSerializerOptions CreateStrictOptions()
    {
        var options = new JsonSerializerOptions
        {
            PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower,
            PropertyNameCaseInsensitive = false,
            NumberHandling = JsonNumberHandling.Strict,
            RespectNullableAnnotations = true,
            RespectRequiredConstructorParameters = true,
            AllowDuplicateProperties = false,
            TypeInfoResolver = new DefaultJsonTypeInfoResolver(),
        };
        options.MakeReadOnly();
        return options;
    }

    private static string Describe(JsonElement value) => value.ValueKind switch
    {
        JsonValueKind.Undefined => "missing",
        var kind => kind.ToString().ToLowerInvariant(),
    };
}
