using System.Threading.Channels;

namespace Pipeline.Storage.Sqlite;

/// <summary>
/// Folds the WAL back into the database file on a connection of its own, off the writer's thread:
/// the writer runs with <c>wal_autocheckpoint</c> off, so no commit stops to copy pages into the
/// file and sync it. A passive checkpoint waits for nobody; one runs after the writer has committed,
/// at most once per interval, so a page written by many commits is copied once per interval.
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

    private readonly Func<SqlCommands> _open;
    private readonly Action<SqlCommands> _close;
    private readonly Channel<bool> _committed = Channel.CreateBounded<bool>(new BoundedChannelOptions(1) { FullMode = BoundedChannelFullMode.DropWrite, SingleReader = true });
    private readonly CancellationTokenSource _stop = new();
    private readonly Task _loop;

    public SqliteCheckpointer(Func<SqlCommands> open, Action<SqlCommands> close)
    {
        _open = open;
        _close = close;
        _loop = Task.Run(RunAsync);
    }

    /// <summary>Says a transaction was committed: a checkpoint follows within the interval.</summary>
    public void Committed() => _committed.Writer.TryWrite(true);

    public async ValueTask DisposeAsync()
    {
        _committed.Writer.TryComplete();
        await _stop.CancelAsync().ConfigureAwait(false);
        await _loop.ConfigureAwait(false);
        _stop.Dispose();
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
                    sql.Execute("PRAGMA wal_checkpoint(PASSIVE)");
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
