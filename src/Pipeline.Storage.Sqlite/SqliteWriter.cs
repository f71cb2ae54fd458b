using System.Threading.Channels;
using Microsoft.Data.Sqlite;

namespace Pipeline.Storage.Sqlite;

/// <summary>
/// The one writer: every write of the store runs here, on one connection, in call order. Calls that
/// arrive while a transaction runs wait and go together into the next one (<c>BEGIN IMMEDIATE</c>,
/// so the read-then-write inside is never raced by another process), and each caller hears back
/// only once that transaction is committed: batched transactions are what make the store fast.
/// </summary>
internal sealed class SqliteWriter : IAsyncDisposable
{
    private readonly Channel<WriteCall> _calls = Channel.CreateUnbounded<WriteCall>(new UnboundedChannelOptions { SingleReader = true });
    private readonly SqlCommands _sql;
    private readonly string _path;
    private readonly int _maxPerTransaction;
    private readonly SqliteCheckpointer _checkpointer;
    private readonly Task _loop;

    public SqliteWriter(SqlCommands sql, string path, int maxPerTransaction, SqliteCheckpointer checkpointer)
    {
        _sql = sql;
        _path = path;
        _maxPerTransaction = maxPerTransaction;
        _checkpointer = checkpointer;
        _loop = Task.Run(RunAsync);
    }

    /// <summary>Runs <paramref name="work"/> in the writer's next transaction; its result once committed.</summary>
    public ValueTask<T> WriteAsync<T>(Func<SqlCommands, T> work, CancellationToken cancellationToken)
    {
        cancellationToken.ThrowIfCancellationRequested();
        var call = new WriteCall<T>(work, cancellationToken);
        if (!_calls.Writer.TryWrite(call))
        {
            throw new ObjectDisposedException(nameof(SqliteQueuedWorkStore));
        }

        return new(call.Task);
    }

    /// <summary>Lets the calls already queued finish, then stops.</summary>
    public async ValueTask DisposeAsync()
    {
        _calls.Writer.TryComplete();
        await _loop.ConfigureAwait(false);
    }

    private async Task RunAsync()
    {
        var group = new List<WriteCall>(_maxPerTransaction);
        while (await _calls.Reader.WaitToReadAsync().ConfigureAwait(false))
        {
            group.Clear();
            while (group.Count < _maxPerTransaction && _calls.Reader.TryRead(out var call))
            {
                // A caller that gave up before its turn gets nothing written; once in a transaction, it runs.
                if (!call.CancelIfRequested())
                {
                    group.Add(call);
                }
            }

            if (group.Count > 0)
            {
                Run(group);
            }
        }
    }

    private void Run(List<WriteCall> group)
    {
        try
        {
            Commit(group);
        }
        catch (Exception error) when (group.Count > 1 && !SqliteErrors.IsAboutTheFile(error))
        {
            // One call's failure must not fail the others that shared its transaction: each again, alone.
            foreach (var call in group)
            {
                try
                {
                    Commit([call]);
                }
                catch (Exception alone)
                {
                    call.Fail(SqliteErrors.Describe(_path, alone));
                }
            }
        }
        catch (Exception error)
        {
            var described = SqliteErrors.Describe(_path, error);
            foreach (var call in group)
            {
                call.Fail(described);
            }
        }
    }

    private void Commit(List<WriteCall> group)
    {
        _checkpointer.EnterCommit();
        try
        {
            RestartWalPastLimit();
            _sql.Execute("BEGIN IMMEDIATE");
            try
            {
                foreach (var call in group)
                {
                    call.Run(_sql);
                }

                _sql.Execute("COMMIT");
            }
            catch
            {
                RollBack();
                throw;
            }
        }
        finally
        {
            _checkpointer.ExitCommit();
        }

        _checkpointer.Committed();

        foreach (var call in group)
        {
            call.Publish();
        }
    }

    // The checkpointer restarts the WAL past its soft limit when it gets to run; should it not (a
    // loaded machine, a burst of large writes), the writer does it itself past the hard limit, before
    // its next transaction: the WAL never holds more than that and one transaction's pages.
    private void RestartWalPastLimit()
    {
        var wal = new FileInfo(_path + "-wal");
        if (!wal.Exists || wal.Length <= SqliteCheckpointer.HardLimitBytes)
        {
            return;
        }

        try
        {
            _sql.Execute("PRAGMA wal_checkpoint(RESTART)");
        }
        catch (SqliteException)
        {
            // Busy (a reader, another process's checkpoint): tried again before the next transaction.
        }
    }

    private void RollBack()
    {
        // SQLite may have rolled back by itself (a full disk, an I/O error): then there is nothing to undo.
        if (!_sql.Connection.Handle!.IsInvalid && SQLitePCL.raw.sqlite3_get_autocommit(_sql.Connection.Handle) == 0)
        {
            _sql.Execute("ROLLBACK");
        }
    }

    private abstract class WriteCall
    {
        public abstract bool CancelIfRequested();

        public abstract void Run(SqlCommands sql);

        public abstract void Publish();

        public abstract void Fail(Exception error);
    }

    private sealed class WriteCall<T>(Func<SqlCommands, T> work, CancellationToken cancellationToken) : WriteCall
    {
        private readonly TaskCompletionSource<T> _done = new(TaskCreationOptions.RunContinuationsAsynchronously);
        private T? _result;

        public Task<T> Task => _done.Task;

        public override bool CancelIfRequested() => cancellationToken.IsCancellationRequested && _done.TrySetCanceled(cancellationToken);

        public override void Run(SqlCommands sql) => _result = work(sql);

        public override void Publish() => _done.TrySetResult(_result!);

        public override void Fail(Exception error) => _done.TrySetException(error);
    }
}
