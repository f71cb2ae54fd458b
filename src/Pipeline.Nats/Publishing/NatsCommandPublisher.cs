using System.Diagnostics;
using System.Globalization;
using System.Text;
using NATS.Client.Core;
using NATS.Client.JetStream;
using NATS.Client.JetStream.Models;
using Pipeline.Commands;
using Pipeline.Nats.Sources;
using Pipeline.Telemetry;

namespace Pipeline.Nats.Publishing;

/// <summary>How <see cref="NatsCommandPublisher"/> publishes.</summary>
public sealed record NatsCommandPublisherOptions
{
    /// <summary>The placeholder a subject template replaces with the command's execution id.</summary>
    public const string ExecutionIdPlaceholder = "{execution_id}";

    /// <summary>The stream. Default the worker's: <c>pipeline_commands</c>.</summary>
    public string Stream { get; init; } = new NatsSourceOptions().Stream;

    /// <summary>The subject of each command. Default <c>pipeline.commands.{execution_id}</c>, inside the worker's default subjects.</summary>
    public string SubjectTemplate { get; init; } = "pipeline.commands." + ExecutionIdPlaceholder;

    /// <summary>Create the stream when missing (file storage, the worker's subjects). Default true.</summary>
    public bool CreateIfMissing { get; init; } = true;

    /// <summary>Most publishes whose ack is awaited at once. Default 256 (the notes measured 34–57k msg/s at 250).</summary>
    public int MaxPending { get; init; } = 256;

    /// <summary>Longest wait for one publish ack. Default 10 s.</summary>
    public TimeSpan AckTimeout { get; init; } = TimeSpan.FromSeconds(10);
}

/// <summary>A command the stream did not take.</summary>
/// <param name="Tag">What the caller passed with it (a line number).</param>
/// <param name="CommandId">The command's id.</param>
/// <param name="Reason">Why, without secrets (the server's error or a timeout).</param>
public readonly record struct PublishFailure(long Tag, string CommandId, string Reason);

/// <summary>
/// Publishes commands to JetStream with up to <see cref="NatsCommandPublisherOptions.MaxPending"/>
/// acks outstanding (a sliding window: memory stays bounded whatever the input's length). Every
/// ack is checked: <c>PublishAsync</c> does not throw on a server error. Each message carries
/// <c>Nats-Msg-Id</c> = <c>command_id</c>, so the stream drops a re-run's copies within its
/// duplicate window, and a W3C <c>traceparent</c>.
/// </summary>
public sealed class NatsCommandPublisher
{
    private readonly INatsConnection _connection;
    private readonly NatsJSContext _js;
    private readonly NatsCommandPublisherOptions _options;
    private readonly Action<PublishFailure> _onFailure;
    private readonly Queue<Pending> _pending;
    private readonly string _prefix;
    private readonly string _suffix;
    private readonly bool _hasPlaceholder;
    private long _published;
    private long _duplicates;
    private long _failed;

    /// <param name="connection">The connection (its own: the notes advise keeping publishing off a consumer's).</param>
    /// <param name="options">Where and how to publish.</param>
    /// <param name="onFailure">Called, on the publishing caller's flow, for each command the stream did not take.</param>
    public NatsCommandPublisher(INatsConnection connection, NatsCommandPublisherOptions options, Action<PublishFailure> onFailure)
    {
        ArgumentNullException.ThrowIfNull(connection);
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(onFailure);
        if (options.MaxPending < 1)
        {
            throw new ArgumentOutOfRangeException(nameof(options), options.MaxPending, "MaxPending must be at least 1.");
        }

        _connection = connection;
        _js = new NatsJSContext(connection);
        _options = options;
        _onFailure = onFailure;
        _pending = new Queue<Pending>(options.MaxPending);
        var at = options.SubjectTemplate.IndexOf(NatsCommandPublisherOptions.ExecutionIdPlaceholder, StringComparison.Ordinal);
        _hasPlaceholder = at >= 0;
        _prefix = at < 0 ? options.SubjectTemplate : options.SubjectTemplate[..at];
        _suffix = at < 0 ? string.Empty : options.SubjectTemplate[(at + NatsCommandPublisherOptions.ExecutionIdPlaceholder.Length)..];
    }

    /// <summary>Commands the stream stored.</summary>
    public long Published => Volatile.Read(ref _published);

    /// <summary>Commands the stream acknowledged as duplicates of one it already had (same <c>command_id</c> within its window).</summary>
    public long Duplicates => Volatile.Read(ref _duplicates);

    /// <summary>Commands the stream did not take.</summary>
    public long Failed => Volatile.Read(ref _failed);

    /// <summary>Set when a publish failed for a reason that will fail every later one too (no ack in time, no stream for the subject, the connection): stop publishing.</summary>
    public string? FatalError { get; private set; }

    /// <summary>The subject of a command of <paramref name="executionId"/>.</summary>
    public string SubjectFor(long executionId) =>
        _hasPlaceholder ? string.Concat(_prefix, executionId.ToString(CultureInfo.InvariantCulture), _suffix) : _prefix;

    /// <summary>
    /// Finds the stream, or creates it when missing and allowed, and checks that the subjects
    /// this publisher uses are stored by it. Throws <see cref="InvalidOperationException"/> with a
    /// message for the user when they are not.
    /// </summary>
    public async Task EnsureStreamAsync(CancellationToken cancellationToken)
    {
        StreamConfig config;
        try
        {
            config = (await _js.GetStreamAsync(_options.Stream, cancellationToken: cancellationToken).ConfigureAwait(false)).Info.Config;
        }
        catch (NatsJSApiException ex) when (ex.Error.ErrCode == 10059)
        {
            if (!_options.CreateIfMissing)
            {
                throw new InvalidOperationException($"stream '{_options.Stream}' does not exist.", ex);
            }

            config = new StreamConfig(_options.Stream, [.. SubjectsForNewStream()]) { Storage = StreamConfigStorage.File };
            try
            {
                await _js.CreateStreamAsync(config, cancellationToken).ConfigureAwait(false);
            }
            catch (NatsJSApiException created) when (created.Error.ErrCode == 10058)
            {
                // Created meanwhile by a worker or another enqueue.
                config = (await _js.GetStreamAsync(_options.Stream, cancellationToken: cancellationToken).ConfigureAwait(false)).Info.Config;
            }
        }

        // A sample subject: a command published outside the stream's subjects would get "no responders".
        var sample = SubjectFor(0);
        var subjects = config.Subjects ?? [];
        if (!subjects.Any(s => SubjectMatches(s, sample)))
        {
            throw new InvalidOperationException($"subject '{sample}' is not stored by stream '{_options.Stream}' (its subjects: {string.Join(", ", subjects)}).");
        }
    }

    /// <summary>
    /// Starts publishing <paramref name="command"/>; when <see cref="NatsCommandPublisherOptions.MaxPending"/>
    /// acks are outstanding, first awaits the oldest. <paramref name="tag"/> comes back with a failure.
    /// </summary>
    public async ValueTask PublishAsync(Command command, long tag, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(command);
        while (_pending.Count >= _options.MaxPending)
        {
            await SettleOldestAsync().ConfigureAwait(false);
        }

        var subject = SubjectFor(command.ExecutionId);
        var previous = Activity.Current;
        // A producer span per message when someone listens (OTel messaging: "<destination> publish").
        var activity = PipelineTelemetry.ActivitySource.HasListeners()
            ? PipelineTelemetry.ActivitySource.StartActivity(string.Concat(subject, " publish"), ActivityKind.Producer)
            : null;
        Activity.Current = previous; // the span ends at its ack, not around the next message
        if (activity is not null)
        {
            activity.SetTag("messaging.system", "nats");
            activity.SetTag("messaging.operation.type", "send");
            activity.SetTag("messaging.operation.name", "publish");
            activity.SetTag("messaging.destination.name", subject);
            activity.SetTag("messaging.message.id", command.CommandId);
        }

        var headers = new NatsHeaders { ["traceparent"] = activity is { IdFormat: ActivityIdFormat.W3C } ? activity.Id! : RandomTraceParent() };
        var body = Encoding.UTF8.GetBytes(command.ToJson());
        var timeout = new CancellationTokenSource(_options.AckTimeout);
        Task<PubAckResponse> ack;
        try
        {
            ack = _js.PublishAsync(subject, body, opts: new NatsJSPubOpts { MsgId = command.CommandId }, headers: headers, cancellationToken: timeout.Token).AsTask();
        }
        catch (Exception ex)
        {
            ack = Task.FromException<PubAckResponse>(ex);
        }

        _pending.Enqueue(new Pending(ack, tag, command.CommandId, activity, timeout));
    }

    /// <summary>Awaits every outstanding ack.</summary>
    public async Task FlushAsync()
    {
        while (_pending.Count > 0)
        {
            await SettleOldestAsync().ConfigureAwait(false);
        }
    }

    /// <summary>
    /// A random W3C traceparent, sampled: with no listener here, the worker's spans still get a
    /// parent of their own per command, and a parent-based sampler there still records them.
    /// </summary>
    internal static string RandomTraceParent() =>
        string.Concat("00-", ActivityTraceId.CreateRandom().ToHexString(), "-", ActivitySpanId.CreateRandom().ToHexString(), "-01");

    /// <summary>NATS subject matching: <c>*</c> one token, <c>&gt;</c> the rest (one or more).</summary>
    internal static bool SubjectMatches(string pattern, string subject)
    {
        var p = pattern.Split('.');
        var s = subject.Split('.');
        for (var i = 0; i < p.Length; i++)
        {
            if (p[i] == ">")
            {
                return s.Length > i;
            }

            if (i >= s.Length || (p[i] != "*" && p[i] != s[i]))
            {
                return false;
            }
        }

        return p.Length == s.Length;
    }

    // The worker's subjects when the template fits them, else the template with '*' for the id.
    private IReadOnlyList<string> SubjectsForNewStream()
    {
        var worker = new NatsSourceOptions().Subjects;
        var sample = SubjectFor(0);
        if (_options.Stream == new NatsSourceOptions().Stream && worker.Any(s => SubjectMatches(s, sample)))
        {
            return worker;
        }

        return [_hasPlaceholder ? string.Concat(_prefix, "*", _suffix) : _prefix];
    }

    private async Task SettleOldestAsync()
    {
        var pending = _pending.Dequeue();
        try
        {
            var ack = await pending.Ack.ConfigureAwait(false);
            ack.EnsureSuccess();
            Interlocked.Increment(ref _published);
        }
        catch (NatsJSDuplicateMessageException)
        {
            // The stream already holds this command_id (a re-run within its duplicate window): not an error.
            Interlocked.Increment(ref _duplicates);
        }
        catch (Exception ex)
        {
            Interlocked.Increment(ref _failed);
            pending.Activity?.SetStatus(ActivityStatusCode.Error, ex.GetType().Name);
            var reason = Describe(ex, out var fatal);
            // After a fatal error every publish still pending fails the same way: report the first only.
            if (!fatal || FatalError is null)
            {
                _onFailure(new PublishFailure(pending.Tag, pending.CommandId, reason));
            }

            if (fatal)
            {
                FatalError ??= reason;
            }
        }
        finally
        {
            pending.Activity?.Stop();
            pending.Timeout.Dispose();
        }
    }

    // The reason to print: the server's own words for a rejection (fatal when it will not change),
    // a plain phrase for a timeout or the connection. Never the URL: it may hold credentials.
    private string Describe(Exception ex, out bool fatal)
    {
        if (ex is not NatsJSApiException && _connection.ConnectionState != NatsConnectionState.Open)
        {
            fatal = true;
            return "the connection to the server was lost before the publish was acknowledged";
        }

        switch (ex)
        {
            case NatsPayloadTooLargeException:
                fatal = false; // the client refused this one before sending it; the next may pass
                return string.Create(CultureInfo.InvariantCulture, $"larger than the server's max payload ({_connection.ServerInfo?.MaxPayload ?? 0} bytes)");
            case NatsJSApiException api:
                fatal = false; // this message was refused (too large, ...); the next may pass
                return $"refused by the stream: {api.Error.Description} ({api.Error.ErrCode})";
            case OperationCanceledException or TimeoutException or NatsNoReplyException:
                fatal = true;
                return string.Create(CultureInfo.InvariantCulture, $"no publish ack within {_options.AckTimeout.TotalSeconds:0.#} s (is the server up?)");
            case NatsNoRespondersException or NatsJSPublishNoResponseException:
                fatal = true;
                return $"no stream stores subject of this command (stream '{_options.Stream}')";
            default:
                fatal = true;
                return ex.GetType().Name;
        }
    }

    private readonly record struct Pending(Task<PubAckResponse> Ack, long Tag, string CommandId, Activity? Activity, CancellationTokenSource Timeout);
}
