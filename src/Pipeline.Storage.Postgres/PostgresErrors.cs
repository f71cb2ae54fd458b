using System.Net.Sockets;
using Npgsql;

namespace Pipeline.Storage.Postgres;

/// <summary>
/// Which failures the caller should retry (<see cref="PostgresQueuedWorkStore.IsTransient"/>), and
/// which mean the pool's idle connections are dead too.
/// </summary>
/// <remarks>
/// Transient: the server cannot be reached or went away (connection refused or reset, a read or
/// write that failed, SQLSTATE class 08), it is shutting down or starting up (57P01 admin shutdown,
/// 57P02 crash shutdown, 57P03 cannot connect now), a command timeout, a deadlock or serialization
/// failure (40P01, 40001), lack of resources (class 53: too many connections, disk full, out of
/// memory), and anything else Npgsql marks transient. Everything else (a syntax or constraint
/// error, a schema newer than the code, cancellation) is not.
/// </remarks>
internal static class PostgresErrors
{
    public static bool IsTransient(Exception exception) => exception switch
    {
        OperationCanceledException => false,
        PostgresException postgres => postgres.IsTransient || IsTransientState(postgres.SqlState),
        NpgsqlException npgsql => npgsql.IsTransient || npgsql.InnerException is IOException or SocketException or TimeoutException,
        TimeoutException or IOException or SocketException => true,
        _ => false,
    };

    /// <summary>The connection, and likely every idle one in the pool, is gone (the server restarted or went away).</summary>
    public static bool IsConnectionLost(Exception exception) => exception switch
    {
        PostgresException postgres => postgres.SqlState is "57P01" or "57P02" or "57P03" || postgres.SqlState.StartsWith("08", StringComparison.Ordinal),
        NpgsqlException npgsql => npgsql.InnerException is IOException or SocketException || (npgsql.InnerException is { } inner && IsConnectionLost(inner)),
        IOException or SocketException => true,
        _ => false,
    };

    private static bool IsTransientState(string state) =>
        state is "57P01" or "57P02" or "57P03" or "40001" or "40P01"
        || state.StartsWith("08", StringComparison.Ordinal)
        || state.StartsWith("53", StringComparison.Ordinal);
}
