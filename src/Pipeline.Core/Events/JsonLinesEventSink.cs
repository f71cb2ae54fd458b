using System.Buffers;
using System.Text.Json;

namespace Pipeline.Events;

/// <summary>
/// Writes each event as one JSON object per line (to a file or stdout), flushing after every
/// batch so a reader sees events as soon as they are emitted.
/// </summary>
public sealed class JsonLinesEventSink : IEventSink, IAsyncDisposable
{
    private static readonly JsonWriterOptions WriterOptions = new() { SkipValidation = true };
    private readonly Stream _stream;
    private readonly bool _ownsStream;
    private readonly ArrayBufferWriter<byte> _buffer = new(64 * 1024);
    private readonly Utf8JsonWriter _writer;
    private IOException? _broken;
    private readonly SemaphoreSlim _lock = new(1, 1);

    /// <summary>Writes to <paramref name="stream"/>.</summary>
    /// <param name="stream">The target.</param>
    /// <param name="ownsStream">Whether disposing the sink disposes the stream.</param>
    public JsonLinesEventSink(Stream stream, bool ownsStream = false)
    {
        _stream = stream ?? throw new ArgumentNullException(nameof(stream));
        _ownsStream = ownsStream;
        _writer = new Utf8JsonWriter(_buffer, WriterOptions);
    }

    /// <summary>Creates (or truncates) <paramref name="path"/> and writes to it.</summary>
    public static JsonLinesEventSink CreateFile(string path)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        var stream = new FileStream(path, FileMode.Create, FileAccess.Write, FileShare.Read, 64 * 1024, FileOptions.Asynchronous);
        return new JsonLinesEventSink(stream, ownsStream: true);
    }

    /// <summary>
    /// Writes to standard output. On Unix through the file descriptor itself: the console stream
    /// ignores a closed pipe (EPIPE), which would report events as written that no one read.
    /// </summary>
    public static JsonLinesEventSink StandardOutput() => new(
        OperatingSystem.IsWindows()
            ? Console.OpenStandardOutput()
            : new FileStream(new Microsoft.Win32.SafeHandles.SafeFileHandle(1, ownsHandle: false), FileAccess.Write, bufferSize: 0),
        ownsStream: true);

    /// <inheritdoc/>
    public async ValueTask WriteAsync(ReadOnlyMemory<PipelineEvent> batch, CancellationToken cancellationToken)
    {
        await _lock.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            if (_broken is { } broken)
            {
                throw new EventSinkClosedException($"The events stream failed earlier: {broken.Message}", broken);
            }

            // One write per batch: serialize into a reused buffer, then hand it to the stream.
            foreach (var e in batch.Span)
            {
                Write(_writer, e);
                _writer.Flush();
                _writer.Reset();
                _buffer.Write("\n"u8);
            }

            await _stream.WriteAsync(_buffer.WrittenMemory, cancellationToken).ConfigureAwait(false);
            await _stream.FlushAsync(cancellationToken).ConfigureAwait(false);
        }
        catch (IOException ex)
        {
            // Part of the batch may be in the file already (a full disk): a retry would tear a line
            // and repeat events, so the stream is closed for good and the failure is terminal.
            _writer.Reset();
            _broken = ex;
            throw new EventSinkClosedException($"Writing events failed: {ex.Message}", ex);
        }
        catch
        {
            _writer.Reset();
            throw;
        }
        finally
        {
            _buffer.ResetWrittenCount();
            _lock.Release();
        }
    }

    /// <summary>Writes one event as a JSON object (without the newline).</summary>
    public static void Write(Utf8JsonWriter writer, in PipelineEvent e)
    {
        ArgumentNullException.ThrowIfNull(writer);
        writer.WriteStartObject();
        writer.WriteNumber("execution_id", e.ExecutionId);
        writer.WriteString("event_type", e.EventType);
        writer.WriteString("step", e.Step);
        writer.WriteString("status", e.Status);
        writer.WriteString("created_at", e.CreatedAt.UtcDateTime); // UTC with a Z, as the wire format writes it
        writer.WriteString("command_id", e.CommandId);
        writer.WriteString("tool_kind", e.ToolKind);
        writer.WriteString("worker_id", e.WorkerId);
        writer.WriteNumber("attempts", e.Attempts);
        if (e.DurationMs is { } duration)
        {
            writer.WriteNumber("duration_ms", Math.Round(duration, 3));
        }

        if (e.Result.ValueKind != JsonValueKind.Undefined)
        {
            writer.WritePropertyName("result");
            e.Result.WriteTo(writer);
        }

        if (e.Error is not null)
        {
            writer.WriteString("error", e.Error);
        }

        writer.WriteEndObject();
    }

    /// <inheritdoc/>
    public async ValueTask DisposeAsync()
    {
        await _writer.DisposeAsync().ConfigureAwait(false);
        if (_ownsStream)
        {
            try
            {
                await _stream.DisposeAsync().ConfigureAwait(false);
            }
            catch (IOException) when (_broken is not null)
            {
                // The stream failed already (and was reported); its close fails the same way.
            }
        }

        _lock.Dispose();
    }
}
