using System.Globalization;
using Microsoft.Extensions.Configuration;
using NATS.Client.Core;
using Pipeline.Commands;
using Pipeline.Modules;
using Pipeline.Nats.Connection;
using Pipeline.Nats.Publishing;

namespace Pipeline.Nats.Modules;

/// <summary>
/// <c>pipeline enqueue</c> on NATS: each command published to the JetStream stream the worker
/// consumes (<see cref="NatsCommandPublisher"/>: <c>Nats-Msg-Id</c> = <c>command_id</c>, acks
/// awaited in a bounded window), on a connection of its own that fails in bounded time rather
/// than waiting for a dead server as a worker's does. No text it gives holds a credential.
/// </summary>
internal sealed class NatsEnqueuer : ICommandEnqueuer
{
    private readonly NatsConnectionOptions _connectionOptions;
    private readonly NatsCommandPublisherOptions _options;
    private readonly NatsConnection _connection;
    private readonly NatsCommandPublisher _publisher;

    private NatsEnqueuer(NatsConnectionOptions connection, NatsCommandPublisherOptions options, Action<EnqueueFailure> onFailure)
    {
        _connectionOptions = connection;
        _options = options;
        _connection = new NatsConnection(connection.ToNatsOpts() with
        {
            // A dead server is an error in bounded time, not a wait forever as a worker's is.
            RetryOnInitialConnect = false,
            Name = "pipeline-enqueue",
        });
        _publisher = new NatsCommandPublisher(_connection, options, failure => onFailure(new EnqueueFailure(failure.Tag, failure.CommandId, Redact(failure.Reason))));
    }

    public string Destination => $"stream {_options.Stream}";

    /// <inheritdoc/>
    public string StoredAs => "published";

    /// <inheritdoc/>
    public string UnconfirmedAs => "awaiting ack";

    public string DuplicateMeaning => "already in the stream (same command_id within its duplicate window): not stored again";

    public string FailureMeaning => "not acknowledged by the stream";

    public long Enqueued => _publisher.Published;

    public long Duplicates => _publisher.Duplicates;

    public long Failed => _publisher.Failed;

    public string? FatalError => _publisher.FatalError is { } fatal
        ? $"publishing to {_connectionOptions.DisplayUrl} stopped: {Redact(fatal)}; the rest of the input was not published (run it again: commands already stored are dropped as duplicates within the stream's duplicate window)."
        : null;

    /// <summary>Opens an enqueuer from the <c>Pipeline</c> section: the connection (<c>Nats:Connection</c>) and where to publish (<c>Nats:Enqueue</c>).</summary>
    public static ICommandEnqueuer Open(IConfiguration section, Action<EnqueueFailure> onFailure)
    {
        ArgumentNullException.ThrowIfNull(section);
        var nats = NatsModule.Bind(section.GetSection(NatsModule.SectionName));
        var options = section.GetSection($"{NatsModule.SectionName}:Enqueue").Get<NatsCommandPublisherOptions>() ?? new NatsCommandPublisherOptions();
        return new NatsEnqueuer(nats.Connection ?? new NatsConnectionOptions(), options, onFailure);
    }

    public async Task StartAsync(TimeSpan bound, CancellationToken cancellationToken)
    {
        using var start = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        start.CancelAfter(bound);
        try
        {
            await _connection.ConnectAsync().AsTask().WaitAsync(start.Token).ConfigureAwait(false);
            await _publisher.EnsureStreamAsync(start.Token).ConfigureAwait(false);
        }
        catch (InvalidOperationException ex) when (ex.InnerException is null or NATS.Client.JetStream.NatsJSApiException)
        {
            throw new EnqueueException(Redact(ex.Message), ex) { SettingError = true };
        }
        catch (OperationCanceledException ex)
        {
            throw new EnqueueException(string.Create(CultureInfo.InvariantCulture, $"cannot reach NATS at {_connectionOptions.DisplayUrl}: no answer within {bound.TotalSeconds:0} s"), ex);
        }
        catch (Exception ex) when (ex is NatsException or TimeoutException or IOException or System.Net.Sockets.SocketException)
        {
            throw new EnqueueException($"cannot reach NATS at {_connectionOptions.DisplayUrl}: {Redact(Why(ex))}", ex);
        }
    }

    public ValueTask EnqueueAsync(Command command, long tag, CancellationToken cancellationToken) =>
        _publisher.PublishAsync(command, tag, cancellationToken);

    public Task FlushAsync() => _publisher.FlushAsync();

    public ValueTask DisposeAsync() => _connection.DisposeAsync();

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

    // Every credential the options hold, removed from a text (a client's message may quote the URL).
    private string Redact(string text)
    {
        var options = _connectionOptions;
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

    /// <summary>The flags of <c>pipeline enqueue</c> on NATS: where commands go, then the connection.</summary>
    internal static ModuleCommandLine CommandLine()
    {
        const string Enqueue = "Pipeline:Nats:Enqueue";
        var defaults = new NatsCommandPublisherOptions();
        return new ModuleCommandLine
        {
            Selector = NatsCommandLine.Url,
            Flags =
            [
                new("--subject", $"{Enqueue}:SubjectTemplate", $"The subject of each command; {NatsCommandPublisherOptions.ExecutionIdPlaceholder} becomes its execution id. Default: {defaults.SubjectTemplate}."),
                new("--stream", $"{Enqueue}:Stream", $"The stream; created when missing (file storage). Default: {defaults.Stream}, the worker's."),
                new("--no-create", $"{Enqueue}:CreateIfMissing", "Fail when the stream does not exist rather than create it.") { Kind = ModuleFlagKind.Switch, WhenOn = "false", WhenOff = "true" },
                new("--max-pending", $"{Enqueue}:MaxPending", "Most publish acks awaited at once.") { Kind = ModuleFlagKind.Integer, Min = 1, Max = 65_536, Default = defaults.MaxPending },
                .. NatsCommandLine.ConnectionFlags,
            ],
            Summary = "NATS JetStream",
            Check = Check,
        };
    }

    private static IReadOnlyList<string> Check(ModuleFlagValues values)
    {
        var errors = new List<string>();
        if (NatsCommandLine.CheckConnection(values) is { } connection)
        {
            errors.Add(connection);
        }

        if (values.Flag("--subject") is { } subject && !ValidSubjectTemplate(subject))
        {
            errors.Add($"--subject must be a subject without spaces, '*' or '>' (it may hold {NatsCommandPublisherOptions.ExecutionIdPlaceholder}), not '{Shorten(subject)}'.");
        }

        if (values.Flag("--stream") is { } stream && (stream.Length == 0 || stream.AsSpan().IndexOfAny(" \t\r\n.*>") >= 0))
        {
            errors.Add($"--stream must be a name without spaces, '.', '*' or '>', not '{Shorten(stream)}'.");
        }

        return errors;
    }

    private static bool ValidSubjectTemplate(string template)
    {
        var subject = template.Replace(NatsCommandPublisherOptions.ExecutionIdPlaceholder, "0", StringComparison.Ordinal);
        return subject.Length > 0 && subject.AsSpan().IndexOfAny(" \t\r\n*>") < 0 && subject.Split('.').All(t => t.Length > 0);
    }

    private static string Shorten(string value) => value.Length <= 100 ? value : string.Concat(value.AsSpan(0, 100), "...").ToString(CultureInfo.InvariantCulture);
}
