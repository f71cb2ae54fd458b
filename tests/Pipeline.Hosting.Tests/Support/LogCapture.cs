using Microsoft.Extensions.Logging;

namespace Pipeline.Hosting.Tests.Support;

/// <summary>A logger provider that keeps every line (level, category, message, exception) for a test to read.</summary>
public sealed class LogCapture : ILoggerProvider
{
    private readonly List<(LogLevel Level, string Category, string Message, Exception? Exception)> _lines = [];

    public IReadOnlyList<(LogLevel Level, string Category, string Message, Exception? Exception)> Lines
    {
        get
        {
            lock (_lines)
            {
                return [.. _lines];
            }
        }
    }

    public ILogger CreateLogger(string categoryName) => new Logger(this, categoryName);

    public void Dispose()
    {
    }

    private sealed class Logger(LogCapture capture, string category) : ILogger
    {
        public IDisposable? BeginScope<TState>(TState state)
            where TState : notnull => null;

        public bool IsEnabled(LogLevel logLevel) => true;

        public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
        {
            lock (capture._lines)
            {
                capture._lines.Add((logLevel, category, formatter(state, exception), exception));
            }
        }
    }
}
