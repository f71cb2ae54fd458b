using System.Net.Sockets;

namespace Pipeline.Storage.Postgres.Tests;

public sealed class PostgresErrorsTests
{
    [Theory]
    [InlineData("57P01")] // admin shutdown: the server is stopping
    [InlineData("57P02")] // crash shutdown
    [InlineData("57P03")] // the server is starting up
    [InlineData("08006")] // connection failure
    [InlineData("40P01")] // deadlock victim
    [InlineData("40001")] // serialization failure
    [InlineData("53300")] // too many connections
    public void A_server_going_away_restarting_or_out_of_resources_is_transient(string sqlState) =>
        Assert.True(PostgresErrors.IsTransient(new PostgresException("m", "FATAL", "FATAL", sqlState)));

    [Theory]
    [InlineData("42601")] // syntax error
    [InlineData("23505")] // unique violation
    [InlineData("42P01")] // undefined table
    public void A_statement_the_server_refuses_is_not_transient(string sqlState) =>
        Assert.False(PostgresErrors.IsTransient(new PostgresException("m", "ERROR", "ERROR", sqlState)));

    [Fact]
    public void A_refused_connection_is_transient_and_a_cancellation_or_a_schema_error_is_not()
    {
        Assert.True(PostgresErrors.IsTransient(new NpgsqlException("Failed to connect", new SocketException((int)SocketError.ConnectionRefused))));
        Assert.False(PostgresErrors.IsTransient(new OperationCanceledException()));
        Assert.False(PostgresErrors.IsTransient(new StoreSchemaException("PostgreSQL", 2, 1)));
    }
}
