namespace Pipeline.Tests.Sources.Support;

/// <summary>
/// A read-only stream of <c>fillCount</c> copies of one byte followed by a tail, generated as it is
/// read (never materialised), handed out at most <c>chunk</c> bytes per read.
/// </summary>
internal sealed class GeneratedStream(byte fill, long fillCount, byte[] tail, int chunk = int.MaxValue) : Stream
{
    private long _position;

    public long BytesRead => _position;

    public override bool CanRead => true;

    public override bool CanSeek => false;

    public override bool CanWrite => false;

    public override long Length => fillCount + tail.Length;

    public override long Position
    {
        get => _position;
        set => throw new NotSupportedException();
    }

    public override int Read(byte[] buffer, int offset, int count) => Read(buffer.AsSpan(offset, count));

    public override int Read(Span<byte> buffer)
    {
        buffer = buffer[..(int)Math.Min(Math.Min(buffer.Length, chunk), Length - _position)];
        var filled = (int)Math.Clamp(fillCount - _position, 0, buffer.Length);
        buffer[..filled].Fill(fill);
        if (filled < buffer.Length)
        {
            tail.AsSpan((int)(_position + filled - fillCount), buffer.Length - filled).CopyTo(buffer[filled..]);
        }

        _position += buffer.Length;
        return buffer.Length;
    }

    public override ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default) =>
        cancellationToken.IsCancellationRequested ? ValueTask.FromCanceled<int>(cancellationToken) : new(Read(buffer.Span));

    public override Task<int> ReadAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) =>
        ReadAsync(buffer.AsMemory(offset, count), cancellationToken).AsTask();

    public override void Flush()
    {
    }

    public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();

    public override void SetLength(long value) => throw new NotSupportedException();

    public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();

    /// <summary>Text split into reads of <paramref name="chunk"/> bytes.</summary>
    public static GeneratedStream Of(byte[] content, int chunk = int.MaxValue) => new(0, 0, content, chunk);
}
