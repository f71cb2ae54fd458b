using Microsoft.Extensions.Logging;

namespace Pipeline.Engine;

/// <summary>
/// The engine logs through this wrapper: a logger that throws (a full disk, a broken provider)
/// must never stop a settle or fault a block, so its failures are swallowed here, once, for every
/// message.
/// </summary>
internal sealed class GuardedLogger(ILogger inner) : ILogger
{
    public IDisposable? BeginScope<TState>(TState state)
        where TState : notnull
    {
        try
        {
            return inner.BeginScope(state);
        }
        catch (Exception)
        {
            return null;
        }
    }

    public bool IsEnabled(LogLevel logLevel)
    {
        try
        {
            return inner.IsEnabled(logLevel);
        }
        catch (Exception)
        {
            return false;
        }
    }

    public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
    {
        try
        {
            inner.Log(logLevel, eventId, state, exception, formatter);
        }
        catch (Exception)
        {
            // Diagnostics are best effort; the handle's fate is not.
        }
    }
}
