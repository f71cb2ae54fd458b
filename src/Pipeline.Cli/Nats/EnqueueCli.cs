using System.CommandLine;
using Pipeline.Nats.Publishing;
using Pipeline.Sources;

namespace Pipeline.Cli.Nats;

/// <summary>The <c>pipeline enqueue</c> command line.</summary>
internal static class EnqueueCli
{
    public static Command Build(TextWriter stdout, TextWriter stderr, bool? interactive, StopSignals stop, Func<Stream> stdin)
    {
        var defaults = new NatsCommandPublisherOptions();
        var connection = new NatsConnectionArguments();
        var file = new Argument<string>("commands") { Description = "A JSON Lines file, one command per line ('-' reads standard input)." };
        var subject = new Option<string>("--subject")
        {
            Description = $"The subject of each command; {NatsCommandPublisherOptions.ExecutionIdPlaceholder} becomes its execution id. Default: {defaults.SubjectTemplate}.",
            DefaultValueFactory = _ => defaults.SubjectTemplate,
        };
        var stream = new Option<string>("--stream")
        {
            Description = $"The stream; created when missing (file storage). Default: {defaults.Stream}, the worker's.",
            DefaultValueFactory = _ => defaults.Stream,
        };
        var noCreate = new Option<bool>("--no-create") { Description = "Fail when the stream does not exist rather than create it." };
        var maxPending = new Option<int>("--max-pending")
        {
            Description = $"Most publish acks awaited at once, from 1 to 65536. Default: {defaults.MaxPending}.",
            DefaultValueFactory = _ => defaults.MaxPending,
        };
        maxPending.Validators.Add(result =>
        {
            if (result.GetValueOrDefault<int>() is < 1 or > 65_536)
            {
                result.AddError("--max-pending must be a whole number from 1 to 65536.");
            }
        });
        var maxLine = new Option<int>("--max-line-bytes")
        {
            Description = $"Longest command line; a longer one is reported with its line number and not published. Default: {JsonLinesSourceOptions.DefaultMaxLineBytes}.",
            DefaultValueFactory = _ => JsonLinesSourceOptions.DefaultMaxLineBytes,
        };
        maxLine.Validators.Add(result =>
        {
            if (result.GetValueOrDefault<int>() is < 1 or > JsonLinesSourceOptions.HardMaxLineBytes)
            {
                result.AddError($"--max-line-bytes must be a whole number from 1 to {JsonLinesSourceOptions.HardMaxLineBytes}.");
            }
        });
        var plain = new Option<bool>("--plain") { Description = "Plain progress lines even on a terminal." };

        var enqueue = new Command("enqueue", "Publish every command of a JSON Lines file to NATS JetStream, for 'pipeline worker' to run.")
        {
            file, subject, stream, noCreate, maxPending, maxLine, plain,
        };
        connection.AddTo(enqueue);
        enqueue.SetAction(async (result, token) =>
        {
            // Checked here, not in a validator: a validator does not see the options' defaults.
            var s = result.GetValue(subject);
            if (s is null || !ValidSubjectTemplate(s))
            {
                await stderr.WriteLineAsync($"error: --subject must be a subject without spaces, '*' or '>' (it may hold {NatsCommandPublisherOptions.ExecutionIdPlaceholder}), not '{TerminalText.Escape(s, 100)}'.");
                return ExitCodes.UsageError;
            }

            if (result.GetValue(stream) is not { Length: > 0 } name || name.AsSpan().IndexOfAny(" \t\r\n.*>") >= 0)
            {
                await stderr.WriteLineAsync($"error: --stream must be a name without spaces, '.', '*' or '>', not '{TerminalText.Escape(result.GetValue(stream), 100)}'.");
                return ExitCodes.UsageError;
            }

            if (string.IsNullOrEmpty(result.GetValue(file)))
            {
                await stderr.WriteLineAsync("error: the commands file must be named ('-' reads standard input), not ''.");
                return ExitCodes.UsageError;
            }

            var request = new EnqueueRequest(
                result.GetValue(file)!,
                connection.Read(result),
                new NatsCommandPublisherOptions
                {
                    Stream = result.GetValue(stream)!,
                    SubjectTemplate = result.GetValue(subject)!,
                    CreateIfMissing = !result.GetValue(noCreate),
                    MaxPending = result.GetValue(maxPending),
                },
                new JsonLinesSourceOptions { MaxLineBytes = result.GetValue(maxLine) },
                result.GetValue(plain) ? false : interactive);
            return await EnqueueCommand.ExecuteAsync(request, new RunConsole(stdout, stderr, stdin, stop), token);
        });
        return enqueue;
    }

    private static bool ValidSubjectTemplate(string template)
    {
        var subject = template.Replace(NatsCommandPublisherOptions.ExecutionIdPlaceholder, "0", StringComparison.Ordinal);
        return subject.Length > 0 && subject.AsSpan().IndexOfAny(" \t\r\n*>") < 0 && subject.Split('.').All(t => t.Length > 0);
    }
}
