using System.Buffers;
using System.IO.Pipelines;
using System.Text;
using System.Text.Json;
using System.Text.Unicode;
using Pipeline.Commands;

namespace Pipeline.Sources;

/// <summary>
/// Reads commands from JSON Lines, one command per line, from a file or any stream, lazily
/// (memory stays bounded by the pipeline and <see cref="JsonLinesSourceOptions.MaxLineBytes"/>,
/// not by the input). Lines end at <c>\n</c> (a trailing <c>\r</c> is dropped); a UTF-8 byte
/// order mark at the start and blank lines are skipped; the last line needs no newline. A
/// malformed line, a line that is not UTF-8 or one longer than the limit becomes a
/// <see cref="ClaimOutcomeKind.Failed"/> outcome naming its line number, and the run goes on.
/// </summary>
public sealed class JsonLinesFileSource : QueuedCommandSource, IAsyncDisposable
{
    // The reader's segment size: one stream read per 64 KiB, as the FileStream buffer gave before.
    private const int ChunkBytes = 64 * 1024;

    private readonly SemaphoreSlim _readLock = new(1, 1);
    private readonly CancellationTokenSource _disposing = new();
    private readonly Stream _stream;
    private readonly PipeReader _reader;
    private readonly int _maxLineBytes;

    // Under _readLock: where the reader is in the input.
    private long _lineNumber;
    private bool _startChecked;
    private bool _skippingLine;
    private bool _ended;

    // Bytes at the front of the unconsumed input already searched for '\n', so a long line is
    // searched once, not again from its start after every read.
    private long _searched;

    // A stream read that outlived the call that started it (its token fired first); the next
    // call awaits it rather than starting a second read, which a PipeReader does not allow.
    private Task<ReadResult>? _pendingRead;
    private int _disposed;

    private JsonLinesFileSource(Stream stream, string name, JsonLinesSourceOptions? options)
        : base((options ?? JsonLinesSourceOptions.Default).TimeProvider)
    {
        options ??= JsonLinesSourceOptions.Default;
        _stream = stream;
        _reader = PipeReader.Create(stream, new StreamPipeReaderOptions(bufferSize: ChunkBytes, minimumReadSize: ChunkBytes / 4));
        _maxLineBytes = options.MaxLineBytes;
        Name = name;
    }

    /// <summary>The name failures are reported under: the file's name, or the name given with the stream.</summary>
    public string Name { get; }

    /// <summary>The longest line accepted, in bytes.</summary>
    public int MaxLineBytes => _maxLineBytes;

    /// <summary>Opens <paramref name="path"/>; throws <see cref="FileNotFoundException"/> or an I/O error when it cannot be read.</summary>
    public static JsonLinesFileSource Open(string path, JsonLinesSourceOptions? options = null)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        // No FileStream buffer: the pipe reader reads in its own pooled chunks.
        var stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, bufferSize: 0, FileOptions.Asynchronous | FileOptions.SequentialScan);
        return new JsonLinesFileSource(stream, System.IO.Path.GetFileName(path), options);
    }

    /// <summary>
    /// Reads from <paramref name="stream"/> (standard input, a socket, ...), which the source
    /// owns and disposes. <paramref name="name"/> appears in failure messages ("stdin line 3: ...").
    /// </summary>
    public static JsonLinesFileSource Open(Stream stream, string name, JsonLinesSourceOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(stream);
        ArgumentException.ThrowIfNullOrEmpty(name);
        if (!stream.CanRead)
        {
            throw new ArgumentException("The stream must be readable.", nameof(stream));
        }

        return new JsonLinesFileSource(stream, name, options);
    }

    /// <inheritdoc/>
    protected override async ValueTask<ClaimOutcome?> ProduceAsync(CancellationToken cancellationToken)
    {
        await _readLock.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            ObjectDisposedException.ThrowIf(Volatile.Read(ref _disposed) != 0, this);
            while (!_ended)
            {
                var result = await ReadAsync(cancellationToken).ConfigureAwait(false);
                ObjectDisposedException.ThrowIf(result.IsCanceled, this); // only DisposeAsync cancels the reader
                if (NextLine(result) is { } outcome)
                {
                    return outcome;
                }
            }

            CompleteInput();
            return null;
        }
        finally
        {
            _readLock.Release();
        }
    }

    /// <summary>Stops reading (a read in progress ends at once) and disposes the stream.</summary>
    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
        {
            return;
        }

        // Wake a call waiting on the stream, so the lock below is not held by a read that may never end.
        await _disposing.CancelAsync().ConfigureAwait(false);
        _reader.CancelPendingRead();
        await _readLock.WaitAsync().ConfigureAwait(false);
        try
        {
            if (_pendingRead is { IsCompleted: false })
            {
                // A stream that ignores cancellation (a terminal's stdin) is still reading into the
                // reader's pooled buffers: close the stream, but leave those buffers to the GC.
                await _stream.DisposeAsync().ConfigureAwait(false);
            }
            else
            {
                await _reader.CompleteAsync().ConfigureAwait(false); // returns the buffers and disposes the stream
            }
        }
        finally
        {
            // The lock and the token source stay undisposed: a late caller must find the lock and see _disposed.
            _readLock.Release();
        }
    }

    private ValueTask<ReadResult> ReadAsync(CancellationToken cancellationToken)
    {
        if (_pendingRead is null)
        {
            // The reader is not given the caller's token: a read it cancels could not be resumed by the next call.
            var read = _reader.ReadAsync(CancellationToken.None);
            if (read.IsCompletedSuccessfully)
            {
                return read; // a line already buffered: the hot path, no allocation
            }

            _pendingRead = read.AsTask();
        }

        return AwaitPendingAsync(cancellationToken);
    }

    private async ValueTask<ReadResult> AwaitPendingAsync(CancellationToken cancellationToken)
    {
        var pending = _pendingRead!;
        using var either = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken, _disposing.Token);
        try
        {
            return await pending.WaitAsync(either.Token).ConfigureAwait(false);
        }
        finally
        {
            if (pending.IsCompleted)
            {
                _pendingRead = null;
            }
        }
    }

    /// <summary>
    /// Takes the next non-blank line from what has been read and advances the reader past it; null
    /// when more input is needed or the input has ended (<see cref="_ended"/>).
    /// </summary>
    private ClaimOutcome? NextLine(ReadResult result)
    {
        var buffer = result.Buffer;
        if (!_startChecked)
        {
            if (!SkipByteOrderMark(ref buffer, result.IsCompleted))
            {
                _reader.AdvanceTo(buffer.Start, buffer.End); // too few bytes yet to tell
                return null;
            }

            _startChecked = true;
        }

        while (buffer.Slice(_searched).PositionOf((byte)'\n') is { } newline)
        {
            var line = buffer.Slice(0, newline);
            buffer = buffer.Slice(buffer.GetPosition(1, newline));
            _searched = 0;
            ClaimOutcome? outcome;
            if (_skippingLine)
            {
                // The end of an over-long line: report it now that the next line can be read.
                _skippingLine = false;
                outcome = TooLong(_lineNumber);
            }
            else
            {
                outcome = Parse(line, ++_lineNumber);
            }

            if (outcome is not null)
            {
                _reader.AdvanceTo(buffer.Start);
                return outcome;
            }
        }

        if (result.IsCompleted)
        {
            // The last line has no newline; it still counts.
            var last = _skippingLine ? TooLong(_lineNumber) : buffer.IsEmpty ? null : Parse(buffer, ++_lineNumber);
            _skippingLine = false;
            _searched = 0;
            _reader.AdvanceTo(buffer.End);
            _ended = last is null;
            return last;
        }

        if (!_skippingLine && buffer.Length > _maxLineBytes + 1L)
        {
            // Longer than any accepted line even with a '\r': count it, and discard until its '\n'.
            _skippingLine = true;
            ++_lineNumber;
        }

        if (_skippingLine)
        {
            _searched = 0;
            _reader.AdvanceTo(buffer.End);
        }
        else
        {
            _searched = buffer.Length;
            _reader.AdvanceTo(buffer.Start, buffer.End);
        }

        return null;
    }

    // Drops a UTF-8 byte order mark; false while the bytes so far could still be one.
    private static bool SkipByteOrderMark(ref ReadOnlySequence<byte> buffer, bool completed)
    {
        ReadOnlySpan<byte> bom = [0xEF, 0xBB, 0xBF];
        Span<byte> start = stackalloc byte[3];
        var have = (int)Math.Min(buffer.Length, 3);
        buffer.Slice(0, have).CopyTo(start);
        if (!bom.StartsWith(start[..have]))
        {
            return true;
        }

        if (have == 3)
        {
            buffer = buffer.Slice(3);
            return true;
        }

        return completed;
    }

    private ClaimOutcome? Parse(ReadOnlySequence<byte> line, long lineNumber)
    {
        if (line.Length > _maxLineBytes + 1L)
        {
            return TooLong(lineNumber);
        }

        if (line.IsSingleSegment)
        {
            return Parse(line.FirstSpan, lineNumber);
        }

        // A line across two chunks: copied into one pooled buffer, at most the limit plus '\r'.
        var length = (int)line.Length;
        var rented = ArrayPool<byte>.Shared.Rent(length);
        try
        {
            line.CopyTo(rented);
            return Parse(rented.AsSpan(0, length), lineNumber);
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(rented);
        }
    }

    private ClaimOutcome? Parse(ReadOnlySpan<byte> line, long lineNumber)
    {
        if (line is [.. var content, (byte)'\r'])
        {
            line = content;
        }

        if (line.Length > _maxLineBytes)
        {
            return TooLong(lineNumber);
        }

        if (IsBlank(line))
        {
            return null;
        }

        if (!Utf8.IsValid(line))
        {
            return ClaimOutcome.Failed($"{Name} line {lineNumber}: malformed command: the line is not valid UTF-8");
        }

        try
        {
            return ClaimOutcome.Claimed(Command.Parse(line));
        }
        catch (JsonException ex)
        {
            // The serializer's own position ("LineNumber: 0") is within the line; ours names the input's line.
            var message = ex.Message;
            var position = message.IndexOf(" | LineNumber:", StringComparison.Ordinal);
            return ClaimOutcome.Failed($"{Name} line {lineNumber}: malformed command: {(position < 0 ? message : message[..position])}");
        }
    }

    private ClaimOutcome TooLong(long lineNumber) =>
        ClaimOutcome.Failed($"{Name} line {lineNumber}: line is longer than the limit of {_maxLineBytes} bytes (--max-line-bytes)");

    // Whitespace as string.IsNullOrWhiteSpace saw it when lines were read as text; a command line
    // starts with '{', so this stops at the first byte.
    private static bool IsBlank(ReadOnlySpan<byte> line)
    {
        while (!line.IsEmpty)
        {
            if (Rune.DecodeFromUtf8(line, out var rune, out var consumed) != OperationStatus.Done || !Rune.IsWhiteSpace(rune))
            {
                return false;
            }

            line = line[consumed..];
        }

        return true;
    }
}
