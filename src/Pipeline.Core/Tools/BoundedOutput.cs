using System.Buffers;
using System.Text;

namespace Pipeline.Tools;

/// <summary>
/// Keeps at most <see cref="Limit"/> bytes of a stream in a pooled buffer and counts every byte
/// seen, so a tool's output costs bounded memory however much a process or a peer sends.
/// Not thread-safe: one reader at a time; dispose only after the read has finished.
/// </summary>
internal sealed class BoundedOutput(int limit) : IDisposable
{
    private const int FirstBufferBytes = 4 * 1024;

    // Pipes hold 64 KiB on Linux: one read empties one.
    private const int DiscardBufferBytes = 64 * 1024;

    private byte[]? _kept;
    private int _count;
    private long _total;

    /// <summary>The most bytes kept.</summary>
    public int Limit { get; } = limit > 0 ? limit : throw new ArgumentOutOfRangeException(nameof(limit), limit, "The limit must be positive.");

    /// <summary>Every byte read, kept or not.</summary>
    public long TotalBytes => _total;

    /// <summary>Whether bytes were read past <see cref="Limit"/> and not kept.</summary>
    public bool Truncated => _total > _count;

    /// <summary>
    /// Reads <paramref name="source"/> to its end. Past the limit it goes on reading and
    /// discarding when <paramref name="drainPastLimit"/> (a process blocked on a full pipe would
    /// never exit), or reads one more chunk to learn whether there is more, then stops.
    /// </summary>
    public async Task ReadFromAsync(Stream source, bool drainPastLimit, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(source);
        byte[]? discard = null;
        try
        {
            while (true)
            {
                int read;
                if (_count < Limit)
                {
                    var free = GrowIfFull();
                    read = await source.ReadAsync(_kept.AsMemory(_count, free), cancellationToken).ConfigureAwait(false);
                    _count += read;
                }
                else
                {
                    discard ??= ArrayPool<byte>.Shared.Rent(DiscardBufferBytes);
                    read = await source.ReadAsync(discard, cancellationToken).ConfigureAwait(false);
                    if (!drainPastLimit)
                    {
                        _total += read;
                        return;
                    }
                }

                if (read == 0)
                {
                    return;
                }

                _total += read;
            }
        }
        finally
        {
            if (discard is not null)
            {
                ArrayPool<byte>.Shared.Return(discard);
            }
        }
    }

    /// <summary>
    /// The kept bytes as text. When truncated, a character cut at the limit is dropped rather than
    /// shown as a replacement character; invalid bytes elsewhere become U+FFFD.
    /// </summary>
    public string Decode(Encoding? encoding = null)
    {
        if (_count == 0)
        {
            return string.Empty;
        }

        var bytes = _kept.AsSpan(0, _count);
        var decoder = (encoding ?? Encoding.UTF8).GetDecoder();

        // Without a flush the decoder holds back an incomplete trailing sequence instead of
        // emitting U+FFFD for it: exactly the cut character of a truncated output.
        var flush = !Truncated;
        var chars = new char[decoder.GetCharCount(bytes, flush)];
        var written = decoder.GetChars(bytes, chars, flush);
        return new string(chars, 0, written);
    }

    /// <inheritdoc/>
    public void Dispose()
    {
        if (_kept is not null)
        {
            ArrayPool<byte>.Shared.Return(_kept);
            _kept = null;
        }

        _count = 0;
    }

    // Grows the kept buffer by doubling up to the limit, so a short output costs a short buffer.
    private int GrowIfFull()
    {
        if (_kept is null)
        {
            _kept = ArrayPool<byte>.Shared.Rent(Math.Min(Limit, FirstBufferBytes));
        }
        else if (_count == Math.Min(_kept.Length, Limit))
        {
            var larger = ArrayPool<byte>.Shared.Rent((int)Math.Min(Limit, 2L * _kept.Length));
            _kept.AsSpan(0, _count).CopyTo(larger);
            ArrayPool<byte>.Shared.Return(_kept);
            _kept = larger;
        }

        return Math.Min(_kept.Length, Limit) - _count;
    }
}
