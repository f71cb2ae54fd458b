using Microsoft.Data.Sqlite;

namespace Pipeline.Storage.Sqlite;

/// <summary>
/// One connection's commands, kept by their text: SQLite prepares a statement on its first run and
/// reuses it while the command lives, which is most of the cost of a small query.
/// </summary>
internal sealed class SqlCommands(SqliteConnection connection) : IDisposable
{
    private readonly Dictionary<string, SqliteCommand> _cache = new(StringComparer.Ordinal);

    public SqliteConnection Connection => connection;

    /// <summary>The command for <paramref name="sql"/>, its parameters set to <paramref name="arguments"/>.</summary>
    public SqliteCommand Get(string sql, params ReadOnlySpan<(string Name, object? Value)> arguments)
    {
        if (!_cache.TryGetValue(sql, out var command))
        {
#pragma warning disable CA2100 // The texts are the store's own constants; values always go in as parameters.
            command = new SqliteCommand(sql, connection);
#pragma warning restore CA2100
            _cache.Add(sql, command);
        }

        foreach (var (name, value) in arguments)
        {
            var index = command.Parameters.IndexOf(name);
            if (index < 0)
            {
                command.Parameters.AddWithValue(name, value ?? DBNull.Value);
            }
            else
            {
                command.Parameters[index].Value = value ?? DBNull.Value;
            }
        }

        return command;
    }

    public int Execute(string sql, params ReadOnlySpan<(string Name, object? Value)> arguments) => Get(sql, arguments).ExecuteNonQuery();

    public object? Scalar(string sql, params ReadOnlySpan<(string Name, object? Value)> arguments)
    {
        var result = Get(sql, arguments).ExecuteScalar();
        return result is DBNull ? null : result;
    }

    public SqliteDataReader Read(string sql, params ReadOnlySpan<(string Name, object? Value)> arguments) => Get(sql, arguments).ExecuteReader();

    public void Dispose()
    {
        foreach (var command in _cache.Values)
        {
            command.Dispose();
        }

        _cache.Clear();
    }
}
