using Pipeline.Commands;

namespace Pipeline.Dispatch;

/// <summary>A tool the Dispatch block runs commands on, looked up by <see cref="Kind"/>.</summary>
public interface ITool
{
    /// <summary>The <c>tool_kind</c> this tool serves.</summary>
    string Kind { get; }

    /// <summary>
    /// Runs <paramref name="command"/>. Report failure through <see cref="ToolResult.Failure"/>;
    /// a throw is also a failure (transient for <see cref="TransientToolException"/>,
    /// <see cref="HttpRequestException"/> and <see cref="TimeoutException"/>). Honour
    /// <paramref name="cancellationToken"/>: it fires on timeout and at the shutdown deadline.
    /// </summary>
    ValueTask<ToolResult> InvokeAsync(Command command, CancellationToken cancellationToken);
}

/// <summary>Thrown by a tool for a fault worth retrying (a dropped connection, an overloaded peer).</summary>
public sealed class TransientToolException : Exception
{
    /// <summary>Creates the exception.</summary>
    public TransientToolException()
    {
    }

    /// <summary>Creates the exception with a message.</summary>
    public TransientToolException(string message)
        : base(message)
    {
    }

    /// <summary>Creates the exception with a message and a cause.</summary>
    public TransientToolException(string message, Exception innerException)
        : base(message, innerException)
    {
    }
}
