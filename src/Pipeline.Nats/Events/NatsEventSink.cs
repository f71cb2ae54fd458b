using System.Buffers;
using System.Collections.Concurrent;
using System.Globalization;
using System.Runtime.InteropServices;
using System.Text;
using System.Text.Json;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using NATS.Client.Core;
using NATS.Client.JetStream;
using NATS.Client.JetStream.Models;
using Pipeline.Events;

namespace Pipeline.Nats.Events;

/// <summary>
/// Publishes each event (the JSON envelope of <see cref="JsonLinesEventSink"/>) to a JetStream
/// subject per execution. A batch's publishes are all started, then their acks awaited together;
/// <c>PublishAsync</c> does not throw on a server error, so every ack is checked, and a batch with
/// any failure throws (the Emit block retries it, or drops it, by <c>SinkFailure</c>). Each event
/// with a command id carries a <c>Nats-Msg-Id</c>, so a retry is harmless: what the stream already
/// holds comes back acknowledged as a duplicate, which counts as stored, and what the sink saw
/// stored in a failed batch is not published again. An event larger than the server's max
/// payload is stored with its <c>result</c> or <c>error</c> replaced by a marker giving the
/// original size, rather than failing its batch for good. Use its own connection: the notes
/// advise keeping publishing off the consumer's.
/// </summary>
public sealed class NatsEventSink : IEventSink, IDisposable
{
    private static readonly JsonWriterOptions WriterOptions = new() { SkipValidation = true };

    // What the headers take besides the Nats-Msg-Id (the NATS/1.0 line, the header names, a
    // traceparent when tracing is on): the server's limit counts headers and body together.
    private const int HeaderHeadroom = 512;

    // The server's default, for a batch written before the first connect told us its own.
    private const int DefaultMaxPayload = 1024 * 1024;

    // Ids of events stored from failed batches, kept at most this many (a few batches' worth: a
    // dropped batch's are never asked for again).
    private const int MaxRemembered = 16 * 1024;

    // How much of an over-long error a shortened event keeps, in characters.
    private const int ErrorPrefixChars = 1024;

    private readonly INatsConnection _connection;
    private readonly NatsJSContext _js;
    private readonly ILogger _logger;
    private readonly NatsEventSinkOptions _options;
    private readonly string _prefix;
    private readonly string _suffix;
    private readonly SemaphoreSlim _bind = new(1, 1);

    // The Nats-Msg-Id of each event stored from a batch that failed: its retry skips them, so
    // they are not stored again even past the stream's duplicate window. Empty while all goes well.
    private readonly ConcurrentDictionary<string, byte> _storedOfFailed = new(StringComparer.Ordinal);
    private volatile bool _bound;
    private int _remembered;
    private long _published;
    private long _duplicates;
    private long _shortened;

    /// <summary>Creates the sink; the stream is bound (or created) at the first write.</summary>
    /// <param name="connection">The connection to publish on (its own, not the consumer's).</param>
    /// <param name="options">Where to publish. Default <see cref="NatsEventSinkOptions"/>'s defaults.</param>
    /// <param name="logger">Where a shortened event is reported. Default none.</param>
    public NatsEventSink(INatsConnection connection, NatsEventSinkOptions? options = null, ILogger? logger = null)
    {
        ArgumentNullException.ThrowIfNull(connection);
        _options = options ?? new NatsEventSinkOptions();
        _options.Validate();
        _connection = connection;
        _logger = logger ?? NullLogger.Instance;
        _js = new NatsJSContext(connection);
        var at = _options.SubjectTemplate.IndexOf(NatsEventSinkOptions.ExecutionIdPlaceholder, StringComparison.Ordinal);
        _prefix = at < 0 ? _options.SubjectTemplate : _options.SubjectTemplate[..at];
        _suffix = at < 0 ? string.Empty : _options.SubjectTemplate[(at + NatsEventSinkOptions.ExecutionIdPlaceholder.Length)..];
        HasPlaceholder = at >= 0;
    }

    /// <summary>Events the stream acknowledged as stored, <see cref="Duplicates"/> included.</summary>
    public long Published => Volatile.Read(ref _published);

    /// <summary>Events the stream acknowledged as duplicates: it held their <c>Nats-Msg-Id</c> already (a retry of a stored event).</summary>
    public long Duplicates => Volatile.Read(ref _duplicates);

    /// <summary>Events stored with their <c>result</c> or <c>error</c> shortened, being over the server's max payload.</summary>
    public long Shortened => Volatile.Read(ref _shortened);

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

        // Read for each batch: a server restarted with another limit is followed.
        var maxPayload = _connection.ServerInfo?.MaxPayload is > 0 and var max ? max : DefaultMaxPayload;
        var remembered = Volatile.Read(ref _remembered) > 0;
        var publishes = new Task<PubAckResponse>?[batch.Length];
        var buffer = new ArrayBufferWriter<byte>(512);
        using (var writer = new Utf8JsonWriter(buffer, WriterOptions))
        {
            for (var i = 0; i < batch.Length; i++)
            {
                var e = batch.Span[i];
                var id = e.CommandId is null ? null : MessageId(e);
                if (remembered && id is not null && Forget(id))
                {
                    continue; // stored by an earlier try of this batch: no publish (null)
                }

                buffer.ResetWrittenCount();
                writer.Reset();
                JsonLinesEventSink.Write(writer, e);
                writer.Flush();
                // UTF-8 takes at most 3 bytes per UTF-16 char of the id.
                var limit = maxPayload - HeaderHeadroom - (3 * (id?.Length ?? 0));
                // Each publish keeps its own copy of the body until it is sent.
                var body = buffer.WrittenCount <= limit ? buffer.WrittenSpan.ToArray() : Shorten(e, buffer.WrittenSpan, limit, maxPayload);
                var options = id is null ? null : new NatsJSPubOpts { MsgId = id };
                publishes[i] = _js.PublishAsync(SubjectFor(e.ExecutionId), body, opts: options, cancellationToken: cancellationToken).AsTask();
            }
        }

        var failures = 0;
        string? firstError = null;
        foreach (var publish in publishes)
        {
            if (publish is null)
            {
                continue;
            }

            try
            {
                var ack = await publish.ConfigureAwait(false);
                if (ack is { Error: null, Duplicate: true })
                {
                    // The stream holds this Nats-Msg-Id already (EnsureSuccess would throw for it): stored.
                    Interlocked.Increment(ref _duplicates);
                }
                else
                {
                    ack.EnsureSuccess();
                }

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
            Remember(batch.Span, publishes);
            throw new IOException($"{failures} of {batch.Length} events were not acknowledged by the stream: {firstError}");
        }
    }

    /// <inheritdoc/>
    public void Dispose() => _bind.Dispose();

    // The same event retried has the same id, so the stream's duplicate window drops the copy.
    private static string MessageId(in PipelineEvent e) =>
        string.Create(CultureInfo.InvariantCulture, $"{e.CommandId}:{e.EventType}:{e.Attempts}:{e.CreatedAt.UtcTicks}");

    private static JsonElement ResultMarker(int originalBytes, int maxPayload)
    {
        var buffer = new ArrayBufferWriter<byte>(128);
        using (var writer = new Utf8JsonWriter(buffer))
        {
            writer.WriteStartObject();
            writer.WriteBoolean("truncated", true);
            writer.WriteNumber("original_bytes", originalBytes);
            writer.WriteNumber("max_payload", maxPayload);
            writer.WriteEndObject();
        }

        using var document = JsonDocument.Parse(buffer.WrittenMemory);
        return document.RootElement.Clone();
    }

    private static string ErrorMarker(string error, int originalBytes, int maxPayload, int limit)
    {
        // A beginning of the error still says what went wrong; never a lone half of a surrogate pair.
        var keep = Math.Min(error.Length, Math.Min(ErrorPrefixChars, Math.Max(0, limit / 8)));
        if (keep > 0 && char.IsHighSurrogate(error[keep - 1]))
        {
            keep--;
        }

        return string.Create(CultureInfo.InvariantCulture, $"[truncated: the error was {originalBytes} bytes, the event over the NATS server's max payload of {maxPayload} bytes; it began:] {error.AsSpan(0, keep)}");
    }

    private static byte[] Serialize(in PipelineEvent e)
    {
        var buffer = new ArrayBufferWriter<byte>(1024);
        using (var writer = new Utf8JsonWriter(buffer, WriterOptions))
        {
            JsonLinesEventSink.Write(writer, e);
        }

        return buffer.WrittenSpan.ToArray();
    }

    /// <summary>
    /// The body of an event over the server's max payload: the larger of its result and error
    /// replaced by a marker with its original size, and the other too when that is not enough. It
    /// keeps its <c>Nats-Msg-Id</c>. Rare: the allocations here do not matter.
    /// </summary>
    private byte[] Shorten(in PipelineEvent e, ReadOnlySpan<byte> original, int limit, int maxPayload)
    {
        var resultBytes = e.Result.ValueKind == JsonValueKind.Undefined ? 0 : JsonMarshal.GetRawUtf8Value(e.Result).Length;
        var errorBytes = e.Error is null ? 0 : Encoding.UTF8.GetByteCount(e.Error);
        if (resultBytes == 0 && errorBytes == 0)
        {
            return original.ToArray(); // nothing to shorten (huge ids or step): the server refuses it and the batch fails
        }

        var result = resultBytes >= errorBytes;
        var error = !result;
        var shortened = Replace(e, result, error, resultBytes, errorBytes, limit, maxPayload);
        var body = Serialize(shortened);
        if (body.Length > limit && resultBytes > 0 && errorBytes > 0)
        {
            (result, error) = (true, true);
            body = Serialize(Replace(e, result, error, resultBytes, errorBytes, limit, maxPayload));
        }

        if (body.Length > limit)
        {
            return body; // the rest of it is too big (huge ids or step): the server refuses it and the batch fails
        }

        Interlocked.Increment(ref _shortened);
        var what = result && error ? "result and error" : result ? "result" : "error";
        Log.EventShortened(_logger, e.EventType, e.CommandId ?? "(none)", original.Length, maxPayload, what, body.Length);
        return body;
    }

    private static PipelineEvent Replace(in PipelineEvent e, bool result, bool error, int resultBytes, int errorBytes, int limit, int maxPayload) => e with
    {
        Result = result ? ResultMarker(resultBytes, maxPayload) : e.Result,
        Error = error ? ErrorMarker(e.Error!, errorBytes, maxPayload, limit) : e.Error,
    };

    /// <summary>After a failed batch: the ids of the events it stored, so its retry does not publish them again.</summary>
    private void Remember(ReadOnlySpan<PipelineEvent> batch, Task<PubAckResponse>?[] publishes)
    {
        if (Volatile.Read(ref _remembered) > MaxRemembered)
        {
            // Batches that were dropped, not retried: their ids are never asked for again. A retry
            // still in progress falls back on the stream's duplicate window.
            _storedOfFailed.Clear();
            Volatile.Write(ref _remembered, 0);
        }

        for (var i = 0; i < batch.Length; i++)
        {
            // Stored: skipped as stored before (null), or acknowledged without an error (a duplicate too).
            var stored = publishes[i] is not { } publish || (publish.IsCompletedSuccessfully && publish.Result.Error is null);
            if (stored && batch[i].CommandId is not null && _storedOfFailed.TryAdd(MessageId(batch[i]), 0))
            {
                Interlocked.Increment(ref _remembered);
            }
        }
    }

    private bool Forget(string id)
    {
        if (!_storedOfFailed.TryRemove(id, out _))
        {
            return false;
        }

        Interlocked.Decrement(ref _remembered);
        return true; // counted in Published when it was acknowledged
    }

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
