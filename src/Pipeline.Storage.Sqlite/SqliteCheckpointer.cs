using System.Threading.Channels;

namespace Pipeline.Storage.Sqlite;

/// <summary>
/// Folds the WAL back into the database file on a connection of its own, off the writer's thread:
/// the writer runs with <c>wal_autocheckpoint</c> off, so no commit stops to copy pages into the
/// file and sync it. A passive checkpoint waits for nobody; one runs after the writer has committed,
/// at most once per interval, so a page written by many commits is copied once per interval. Past
/// <see cref="RestartFrames"/> it restarts the WAL too, holding the writer for that one checkpoint.
/// </summary>
/// <remarks>
/// A checkpoint that fails (another process's checkpoint running, a full disk) is left for the next
/// one: the commits are already durable in the WAL, and a write that cannot reach the disk reports
/// it to its own caller. The WAL grows meanwhile; SQLite folds it in when the last connection closes.
/// </remarks>
internal sealed class SqliteCheckpointer : IAsyncDisposable
{
    /// <summary>The least time between two checkpoints.</summary>
    public static readonly TimeSpan Interval = TimeSpan.FromMilliseconds(100);

    /// <summary>
    /// WAL frames past which a checkpoint also restarts the WAL: 64 MiB of 4 KiB pages, the store's
    /// journal_size_limit. A passive checkpoint never catches up with a writer that never pauses, and
    /// SQLite only starts the WAL over once one has, so without this it grows for as long as the
    /// writes go on (1.9 GB in 35 s under a busy worker).
    /// </summary>
    public const long RestartFrames = 16384;

    /// <summary>
    /// The WAL file's size past which the writer restarts the WAL itself before its next transaction
    /// (128 MiB, twice <see cref="RestartFrames"/>): the bound holds however this loop is scheduled.
    /// The file is cut back to journal_size_limit (64 MiB) whenever the WAL starts over, so its size
    /// passes this only while the WAL itself holds more.
    /// </summary>
    public const long HardLimitBytes = 2 * RestartFrames * 4096;

    private readonly Func<SqlCommands> _open;
    private readonly Action<SqlCommands> _close;
    private readonly Channel<bool> _committed = Channel.CreateBounded<bool>(new BoundedChannelOptions(1) { FullMode = BoundedChannelFullMode.DropWrite, SingleReader = true });
    private readonly CancellationTokenSource _stop = new();
    private readonly SemaphoreSlim _commits = new(1, 1);
    private readonly Task _loop;

    public SqliteCheckpointer(Func<SqlCommands> open, Action<SqlCommands> close)
    {
        _open = open;
        _close = close;
        _loop = Task.Run(RunAsync);
    }

    /// <summary>Held by the writer around each transaction, and by a restarting checkpoint.</summary>
    public void EnterCommit() => _commits.Wait();

    /// <summary>Ends what <see cref="EnterCommit"/> began.</summary>
    public void ExitCommit() => _commits.Release();

    /// <summary>Says a transaction was committed: a checkpoint follows within the interval.</summary>
    public void Committed() => _committed.Writer.TryWrite(true);

    public async ValueTask DisposeAsync()
    {
        _committed.Writer.TryComplete();
        await _stop.CancelAsync().ConfigureAwait(false);
        await _loop.ConfigureAwait(false);
        _stop.Dispose();
        _commits.Dispose();
    }

    // The frames in the WAL as the passive checkpoint found them (its second column).
    private static long Passive(SqlCommands sql)
    {
        using var result = sql.Read("PRAGMA wal_checkpoint(PASSIVE)");
        return result.Read() ? result.GetInt64(1) : 0;
    }

    private async Task RunAsync()
    {
        SqlCommands? sql = null;
        try
        {
            while (await _committed.Reader.WaitToReadAsync().ConfigureAwait(false))
            {
                _committed.Reader.TryRead(out _);
                try
                {
                    sql ??= _open();
                    if (Passive(sql) >= RestartFrames)
                    {
                        // Between two of this store's commits (SQLite's busy handler polls, and a
                        // writer that never pauses wins every poll): copies the rest, waits for the
                        // readers, and makes the next commit start the WAL over at its beginning.
                        await _commits.WaitAsync(_stop.Token).ConfigureAwait(false);
                        try
                        {
                            sql.Execute("PRAGMA wal_checkpoint(RESTART)");
                        }
                        finally
                        {
                            _commits.Release();
                        }
                    }
                }
                catch (Exception)
                {
                    // Left for the next checkpoint (see the remarks); a connection in doubt is opened anew.
                    if (sql is not null)
                    {
                        _close(sql);
                        sql = null;
                    }
                }

                // Paced by the wall clock, not the store's lease clock: this is I/O, not a lease.
                await Task.Delay(Interval, TimeProvider.System, _stop.Token).ConfigureAwait(false);
            }
        }
        catch (OperationCanceledException) when (_stop.IsCancellationRequested)
        {
        }
        finally
        {
            if (sql is not null)
            {
                _close(sql);
            }
        }
    }
}
