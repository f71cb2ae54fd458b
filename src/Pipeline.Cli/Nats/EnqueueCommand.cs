using System.Diagnostics;
using System.Globalization;
using NATS.Client.Core;
using Pipeline.Commands;
using Pipeline.Nats.Connection;
using Pipeline.Nats.Publishing;
using Pipeline.Sources;
using Spectre.Console;

namespace Pipeline.Cli.Nats;

/// <summary>What <c>pipeline enqueue</c> was asked to do.</summary>
internal sealed record EnqueueRequest(string CommandsPath, NatsConnectionOptions Connection, NatsCommandPublisherOptions Publisher, JsonLinesSourceOptions Source, bool? Interactive);

/// <summary>
/// <c>pipeline enqueue</c>: reads commands with the same byte-level JSON Lines reader as
/// <c>pipeline run</c> and publishes each to JetStream, acks awaited in a bounded window.
/// </summary>
internal static class EnqueueCommand
{
    /// <summary>How long connecting and finding the stream may take before the run gives up.</summary>
    internal static readonly TimeSpan StartBound = TimeSpan.FromSeconds(10);

    // After this many, malformed lines are counted, not printed one by one.
    private const int MaxListed = 100;

    public static async Task<int> ExecuteAsync(EnqueueRequest request, RunConsole console, CancellationToken cancellationToken)
    {
        var (stdout, stderr) = (console.Out, console.Error);
        var inputName = request.CommandsPath == "-" ? "stdin" : request.CommandsPath;
        Stream input;
        try
        {
            input = request.CommandsPath == "-"
                ? console.OpenStandardInput()
                : new FileStream(request.CommandsPath, FileMode.Open, FileAccess.Read, FileShare.Read, bufferSize: 0, FileOptions.Asynchronous | FileOptions.SequentialScan);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            await stderr.WriteLineAsync($"error: cannot read {TerminalText.Escape(inputName)}: {TerminalText.Escape(ex.Message)}");
            return ExitCodes.UsageError;
        }

        // The source owns (and disposes) the stream; its position drives the progress bar.
        await using var source = JsonLinesFileSource.Open(input, Path.GetFileName(inputName), request.Source);
        var secrets = new Secrets(request.Connection);
        var opts = request.Connection.ToNatsOpts() with
        {
            // A dead server is an error in bounded time, not a wait forever as a worker's is.
            RetryOnInitialConnect = false,
            Name = "pipeline-enqueue",
        };
        await using var connection = new NatsConnection(opts);
        var publisher = new NatsCommandPublisher(connection, request.Publisher, failure => Report(stderr, failure));
        using (var start = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken))
        {
            start.CancelAfter(StartBound);
            try
            {
                await connection.ConnectAsync().AsTask().WaitAsync(start.Token);
                await publisher.EnsureStreamAsync(start.Token);
            }
            catch (InvalidOperationException ex) when (ex.InnerException is null or NATS.Client.JetStream.NatsJSApiException)
            {
                await stderr.WriteLineAsync($"error: {TerminalText.Escape(secrets.Redact(ex.Message))}");
                return ExitCodes.UsageError;
            }
            catch (Exception ex) when (ex is OperationCanceledException or NatsException or TimeoutException or IOException or System.Net.Sockets.SocketException)
            {
                var why = ex is OperationCanceledException ? string.Create(CultureInfo.InvariantCulture, $"no answer within {StartBound.TotalSeconds:0} s") : Why(ex);
                await stderr.WriteLineAsync($"error: cannot reach NATS at {TerminalText.Escape(request.Connection.DisplayUrl)}: {TerminalText.Escape(secrets.Redact(why))}");
                return ExitCodes.SomeFailed;
            }
        }

        var counts = new Counts();
        var clock = Stopwatch.StartNew();
        var interactive = request.Interactive ?? (ReferenceEquals(stdout, Console.Out) && !Console.IsOutputRedirected);
        var length = input.CanSeek ? input.Length : 0;
        var publishing = PublishAllAsync(source, publisher, counts, stderr, cancellationToken);
        await ShowProgressAsync(publishing, publisher, counts, input, length, clock, interactive, stdout);
        await publishing;
        clock.Stop();

        var stoppedBy = console.Stop.First;
        var stored = publisher.Published;
        var seconds = Math.Max(clock.Elapsed.TotalSeconds, 1e-3);
        await stdout.WriteLineAsync(string.Create(CultureInfo.InvariantCulture, $"enqueued {stored} commands from {TerminalText.Escape(inputName)} to stream {TerminalText.Escape(request.Publisher.Stream)} in {clock.Elapsed.TotalSeconds:0.00} s ({stored / seconds:0}/s)"));
        if (publisher.Duplicates > 0)
        {
            await stdout.WriteLineAsync(string.Create(CultureInfo.InvariantCulture, $"{publisher.Duplicates} already in the stream (same command_id within its duplicate window): not stored again"));
        }

        if (counts.Malformed > 0)
        {
            await stdout.WriteLineAsync(string.Create(CultureInfo.InvariantCulture, $"{counts.Malformed} malformed lines not published"));
        }

        if (publisher.Failed > 0)
        {
            await stdout.WriteLineAsync(string.Create(CultureInfo.InvariantCulture, $"{publisher.Failed} commands not acknowledged by the stream"));
        }

        if (publisher.FatalError is { } fatal)
        {
            await stderr.WriteLineAsync($"error: publishing to {TerminalText.Escape(request.Connection.DisplayUrl)} stopped: {TerminalText.Escape(secrets.Redact(fatal))}; the rest of the input was not published (run it again: commands already stored are dropped as duplicates within the stream's duplicate window).");
            return ExitCodes.SomeFailed;
        }

        if (stoppedBy is not null && !counts.InputEnded)
        {
            await stderr.WriteLineAsync($"pipeline: {stoppedBy.Name}: stopped before the end of {TerminalText.Escape(inputName)}.");
            return stoppedBy.ExitCode;
        }

        return counts.Malformed > 0 || publisher.Failed > 0 ? ExitCodes.SomeFailed : ExitCodes.Success;
    }

    private static async Task PublishAllAsync(JsonLinesFileSource source, NatsCommandPublisher publisher, Counts counts, TextWriter stderr, CancellationToken cancellationToken)
    {
        long item = 0;
        try
        {
            while (!cancellationToken.IsCancellationRequested && publisher.FatalError is null)
            {
                if (await source.NextAsync(cancellationToken) is not { } pulled)
                {
                    counts.InputEnded = true;
                    break;
                }

                // The file source only counts outstanding deliveries; nothing is redelivered here.
                await source.AckAsync(pulled.Handle, CancellationToken.None);
                var outcome = pulled.Outcome;
                if (outcome.Kind == ClaimOutcomeKind.Claimed && outcome.Command is { } command)
                {
                    await publisher.PublishAsync(command, ++item, CancellationToken.None);
                    Interlocked.Increment(ref counts.Sent);
                    continue;
                }

                if (Interlocked.Increment(ref counts.Malformed) <= MaxListed)
                {
                    await stderr.WriteLineAsync($"error: {TerminalText.Escape(outcome.Reason, 1000)}; not published");
                }
                else if (counts.Malformed == MaxListed + 1)
                {
                    await stderr.WriteLineAsync($"error: more than {MaxListed} malformed lines; the rest are counted, not listed");
                }
            }
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
            // Ctrl+C or SIGTERM: stop reading; what was sent is still awaited below.
        }
        finally
        {
            await publisher.FlushAsync();
        }
    }

    private static void Report(TextWriter stderr, PublishFailure failure) =>
        stderr.WriteLine($"error: command {TerminalText.Escape(failure.CommandId)} (command #{failure.Tag.ToString(CultureInfo.InvariantCulture)} of the input) not published: {TerminalText.Escape(failure.Reason)}");

    private static async Task ShowProgressAsync(Task publishing, NatsCommandPublisher publisher, Counts counts, Stream input, long length, Stopwatch clock, bool interactive, TextWriter plain)
    {
        if (interactive)
        {
            await AnsiConsole.Progress().AutoClear(false).Columns(new TaskDescriptionColumn(), new ProgressBarColumn(), new PercentageColumn(), new ElapsedTimeColumn(), new SpinnerColumn())
                .StartAsync(async context =>
                {
                    var bar = context.AddTask("enqueue", maxValue: length > 0 ? length : 1);
                    bar.IsIndeterminate = length <= 0;
                    while (!publishing.IsCompleted)
                    {
                        await Task.WhenAny(publishing, Task.Delay(250));
                        bar.Description = Line(publisher, counts, clock);
                        if (length > 0)
                        {
                            bar.Value = Position(input, length);
                        }
                    }

                    bar.Value = bar.MaxValue;
                });
            return;
        }

        while (!publishing.IsCompleted)
        {
            await Task.WhenAny(publishing, Task.Delay(1000));
            if (!publishing.IsCompleted)
            {
                await plain.WriteLineAsync("progress: " + Line(publisher, counts, clock));
            }
        }
    }

    private static string Line(NatsCommandPublisher publisher, Counts counts, Stopwatch clock)
    {
        var seconds = Math.Max(clock.Elapsed.TotalSeconds, 1e-3);
        return string.Create(CultureInfo.InvariantCulture, $"published {publisher.Published}, awaiting ack {Math.Max(0, Volatile.Read(ref counts.Sent) - publisher.Published - publisher.Duplicates - publisher.Failed)}, malformed {Volatile.Read(ref counts.Malformed)}, {publisher.Published / seconds:0}/s");
    }

    private static long Position(Stream input, long length)
    {
        try
        {
            return Math.Min(input.Position, length);
        }
        catch (ObjectDisposedException)
        {
            return length;
        }
    }

    // The innermost messages, which say what went wrong (refused, timed out, authorization violation).
    private static string Why(Exception ex)
    {
        var parts = new List<string>();
        for (var e = ex; e is not null && parts.Count < 4; e = e.InnerException)
        {
            if (!string.IsNullOrWhiteSpace(e.Message) && !parts.Contains(e.Message))
            {
                parts.Add(e.Message);
            }
        }

        return string.Join(": ", parts);
    }

    private sealed class Counts
    {
        public long Sent;
        public long Malformed;
        public bool InputEnded;
    }

    /// <summary>Removes every credential the options hold from a text (a client's message may quote the URL).</summary>
    private sealed class Secrets(NatsConnectionOptions options)
    {
        public string Redact(string text)
        {
            text = text.Replace(options.Url, options.DisplayUrl, StringComparison.Ordinal);
            foreach (var part in options.Url.Split(','))
            {
                text = text.Replace(part.Trim(), NatsConnectionOptions.Redact(part.Trim()), StringComparison.Ordinal);
                if (Uri.TryCreate(part.Trim(), UriKind.Absolute, out var uri) && uri.UserInfo.Length > 0)
                {
                    foreach (var secret in uri.UserInfo.Split(':').Append(uri.UserInfo).Append(Uri.UnescapeDataString(uri.UserInfo)))
                    {
                        text = Hide(text, secret);
                    }
                }
            }

            return Hide(Hide(text, options.Password), options.Token);
        }

        private static string Hide(string text, string? secret) =>
            string.IsNullOrEmpty(secret) || secret.Length < 3 ? text : text.Replace(secret, "***", StringComparison.Ordinal);
    }
}
