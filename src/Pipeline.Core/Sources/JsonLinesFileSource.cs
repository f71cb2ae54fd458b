using System.Text.Json;
using Pipeline.Commands;

namespace Pipeline.Sources;

/// <summary>
/// Reads commands from a JSON Lines file, one command per line, lazily (memory stays bounded
/// by the pipeline, not the file). Blank lines are skipped. A malformed line becomes a
/// <see cref="ClaimOutcomeKind.Failed"/> outcome naming its line number, and the run goes on.
/// </summary>
public sealed class JsonLinesFileSource : QueuedCommandSource, IAsyncDisposable
{
    private readonly SemaphoreSlim _readLock = new(1, 1);
    private readonly StreamReader _reader;
    private long _lineNumber;

    private JsonLinesFileSource(StreamReader reader, string path, TimeProvider? timeProvider)
        : base(timeProvider)
    {
        _reader = reader;
        Path = path;
    }

    /// <summary>The file being read.</summary>
    public string Path { get; }

    /// <summary>Opens <paramref name="path"/>; throws <see cref="FileNotFoundException"/> or an I/O error when it cannot be read.</summary>
    public static JsonLinesFileSource Open(string path, TimeProvider? timeProvider = null)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        var stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, 64 * 1024, FileOptions.Asynchronous | FileOptions.SequentialScan);
        return new JsonLinesFileSource(new StreamReader(stream), path, timeProvider);
    }

    /// <inheritdoc/>
    protected override async ValueTask<ClaimOutcome?> ProduceAsync(CancellationToken cancellationToken)
    {
        await _readLock.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            while (!InputComplete)
            {
                var line = await _reader.ReadLineAsync(cancellationToken).ConfigureAwait(false);
                if (line is null)
                {
                    CompleteInput();
                    return null;
                }

                var lineNumber = ++_lineNumber;
                if (string.IsNullOrWhiteSpace(line))
                {
                    continue;
                }

                return ParseLine(line, lineNumber);
            }

            return null;
        }
        finally
        {
            _readLock.Release();
        }
    }

    /// <inheritdoc/>
    public ValueTask DisposeAsync()
    {
        _reader.Dispose();
        _readLock.Dispose();
        return ValueTask.CompletedTask;
    }

    private ClaimOutcome ParseLine(string line, long lineNumber)
    {
        try
        {
            return ClaimOutcome.Claimed(Command.Parse(line));
        }
        catch (JsonException ex)
        {
            // The serializer's own position ("LineNumber: 0") is within the line; ours names the file's line.
            var message = ex.Message;
            var position = message.IndexOf(" | LineNumber:", StringComparison.Ordinal);
            return ClaimOutcome.Failed($"{System.IO.Path.GetFileName(Path)} line {lineNumber}: malformed command: {(position < 0 ? message : message[..position])}");
        }
    }
}
