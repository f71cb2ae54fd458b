using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Logging.Console;

namespace Pipeline.Cli;

/// <summary>
/// One line per engine warning on stderr (<c>warn: pipeline[12] ...</c>), with the message and
/// exception escaped: log messages carry command ids and tool errors, which come from input.
/// </summary>
internal sealed class TerminalLogFormatter() : ConsoleFormatter(FormatterName)
{
    public const string FormatterName = "pipeline-terminal";

    public override void Write<TState>(in LogEntry<TState> logEntry, Microsoft.Extensions.Logging.IExternalScopeProvider? scopeProvider, TextWriter textWriter)
    {
        if (logEntry.Exception is Pipeline.Events.EventSinkClosedException or Pipeline.Modules.ModuleRunException)
        {
            return; // the run reports a failed events file, or a module's reason to stop, itself, once
        }

        if (logEntry.EventId.Id == Pipeline.Hosting.Log.FaultedId && logEntry.Category == Pipeline.Hosting.Log.Category)
        {
            return; // 'pipeline worker' reports the worker's fault itself, once, as its error line
        }

        var message = logEntry.Formatter(logEntry.State, logEntry.Exception);
        if (string.IsNullOrEmpty(message) && logEntry.Exception is null)
        {
            return;
        }

        var line = $"{Level(logEntry.LogLevel)}: {logEntry.Category}[{logEntry.EventId.Id}] {TerminalText.Escape(message, 2000)}";
        if (logEntry.Exception is { } exception)
        {
            line += " " + TerminalText.Escape($"{exception.GetType().Name}: {exception.Message}", 2000);
        }

        textWriter.Write(line + Environment.NewLine);
    }

    private static string Level(LogLevel level) => level switch
    {
        LogLevel.Trace => "trce",
        LogLevel.Debug => "dbug",
        LogLevel.Information => "info",
        LogLevel.Warning => "warn",
        LogLevel.Error => "fail",
        LogLevel.Critical => "crit",
        _ => "none",
    };
}
