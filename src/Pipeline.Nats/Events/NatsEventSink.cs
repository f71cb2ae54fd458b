using System.Buffers;
using System.Globalization;
using System.Text.Json;
using NATS.Client.Core;
using NATS.Client.JetStream;
using NATS.Client.JetStream.Models;
using Pipeline.Events;

namespace Pipeline.Nats.Events;

/// <summary>
/// Publishes each event (the JSON envelope of <see cref="JsonLinesEventSink"/>) to a JetStream
/// subject per execution. A batch's publishes are all started, then their acks awaited together;
/// <c>PublishAsync</c> does not throw on a server error, so every ack is checked, and a batch with
/// any failure throws (the Emit block retries it; the <c>Nats-Msg-Id</c> of each event lets the
/// stream drop the copies that had made it). Use its own connection: the notes advise keeping
/// publishing off the consumer's.
/// </summary>
public sealed class NatsEventSink : IEventSink, IDisposable
{
    private static readonly JsonWriterOptions WriterOptions = new() { SkipValidation = true };

    private readonly NatsJSContext _js;
    private readonly NatsEventSinkOptions _options;
    private readonly string _prefix;
    private readonly string _suffix;
    private readonly SemaphoreSlim _bind = new(1, 1);
    private volatile bool _bound;
    private long _published;

    /// <summary>Creates the sink; the stream is bound (or created) at the first write.</summary>
    public NatsEventSink(INatsConnection connection, NatsEventSinkOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(connection);
        _options = options ?? new NatsEventSinkOptions();
        _options.Validate();
        _js = new NatsJSContext(connection);
        var at = _options.SubjectTemplate.IndexOf(NatsEventSinkOptions.ExecutionIdPlaceholder, StringComparison.Ordinal);
        _prefix = at < 0 ? _options.SubjectTemplate : _options.SubjectTemplate[..at];
        _suffix = at < 0 ? string.Empty : _options.SubjectTemplate[(at + NatsEventSinkOptions.ExecutionIdPlaceholder.Length)..];
        HasPlaceholder = at >= 0;
    }

    /// <summary>Events the stream acknowledged.</summary>
    public long Published => Volatile.Read(ref _published);

    private bool HasPlaceholder { get; }

    /// <summary>The subject <paramref name="executionId"/>'s events go to.</summary>
    public string SubjectFor(long executionId) =>
        HasPlaceholder ? string.Concat(_prefix, executionId.ToString(CultureInfo.InvariantCulture), _suffix) : _prefix;

    /// <inheritdoc/>
    public async ValueTask WriteAsync(ReadOnlyMemory<PipelineEvent> batch, CancellationToken cancellationToken)
    {
        if (!_bound)
        {
            await BindAsync(cancellationToken).ConfigureAwait(false);
        }

        var publishes = new Task<PubAckResponse>[batch.Length];
        var buffer = new ArrayBufferWriter<byte>(512);
        using (var writer = new Utf8JsonWriter(buffer, WriterOptions))
        {
            for (var i = 0; i < batch.Length; i++)
            {
                var e = batch.Span[i];
                buffer.ResetWrittenCount();
                writer.Reset();
                JsonLinesEventSink.Write(writer, e);
                writer.Flush();
                var options = e.CommandId is null ? null : new NatsJSPubOpts { MsgId = MessageId(e) };
                // Each publish keeps its own copy of the body until it is sent.
                publishes[i] = _js.PublishAsync(SubjectFor(e.ExecutionId), buffer.WrittenSpan.ToArray(), opts: options, cancellationToken: cancellationToken).AsTask();
            }
        }

        var failures = 0;
        string? firstError = null;
        foreach (var publish in publishes)
        {
            try
            {
                var ack = await publish.ConfigureAwait(false);
                ack.EnsureSuccess();
                Interlocked.Increment(ref _published);
            }
            catch (Exception ex) when (ex is not OperationCanceledException)
            {
                failures++;
                firstError ??= ex.Message;
            }
        }

        if (failures > 0)
        {
            throw new IOException($"{failures} of {batch.Length} events were not acknowledged by the stream: {firstError}");
        }
    }

    /// <inheritdoc/>
    public void Dispose() => _bind.Dispose();

    // The same event retried has the same id, so the stream's duplicate window drops the copy.
    private static string MessageId(in PipelineEvent e) =>
        string.Create(CultureInfo.InvariantCulture, $"{e.CommandId}:{e.EventType}:{e.Attempts}:{e.CreatedAt.UtcTicks}");

    private async ValueTask BindAsync(CancellationToken cancellationToken)
    {
        await _bind.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            if (_bound)
            {
                return;
            }

            if (_options.CreateIfMissing)
            {
                try
                {
                    await _js.CreateStreamAsync(new StreamConfig(_options.Stream, [.. _options.Subjects]) { Storage = StreamConfigStorage.File }, cancellationToken).ConfigureAwait(false);
                }
                catch (NatsJSApiException ex) when (ex.Error.ErrCode == 10058)
                {
                    // Already there (another worker, or an earlier run).
                }
            }
            else
            {
                await _js.GetStreamAsync(_options.Stream, cancellationToken: cancellationToken).ConfigureAwait(false);
            }

            _bound = true;
        }
        finally
        {
            _bind.Release();
        }
    }
}
