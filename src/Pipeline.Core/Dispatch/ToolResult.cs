using System.Text.Json;

namespace Pipeline.Dispatch;

/// <summary>What a tool run produced: success with an optional JSON result, or failure with an error.</summary>
public readonly struct ToolResult
{
    private ToolResult(bool isSuccess, JsonElement value, string? error, bool isTransient)
    {
        IsSuccess = isSuccess;
        Value = value;
        Error = error;
        IsTransient = isTransient;
    }

    /// <summary>Whether the tool succeeded.</summary>
    public bool IsSuccess { get; }

    /// <summary>The result (also on failure, e.g. an HTTP error body); <see cref="JsonValueKind.Undefined"/> when none.</summary>
    public JsonElement Value { get; }

    /// <summary>The error message on failure.</summary>
    public string? Error { get; }

    /// <summary>Whether the failure is worth retrying.</summary>
    public bool IsTransient { get; }

    /// <summary>Success with no result.</summary>
    public static ToolResult Success() => new(true, default, null, false);

    /// <summary>Success with <paramref name="value"/> as the result.</summary>
    public static ToolResult Success(JsonElement value) => new(true, value, null, false);

    /// <summary>Failure; <paramref name="transient"/> makes it eligible for retry.</summary>
    public static ToolResult Failure(string error, bool transient = false, JsonElement value = default) =>
        new(false, value, error ?? throw new ArgumentNullException(nameof(error)), transient);
}
