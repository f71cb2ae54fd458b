namespace Pipeline.Storage.Postgres.Tests;

public sealed class PostgresStoreOptionsTests
{
    [Fact]
    public void The_defaults_are_the_pipeline_schema_and_a_30_second_command_timeout()
    {
        var options = new PostgresStoreOptions { ConnectionString = "Host=localhost" };
        Assert.Equal(("pipeline", TimeSpan.FromSeconds(30)), (options.Schema, options.CommandTimeout));
        Assert.Empty(options.FindErrors());
    }

    [Theory]
    [InlineData("Pipeline")]
    [InlineData("pipe-line")]
    [InlineData("1pipeline")]
    [InlineData("pipeline; drop table x")]
    [InlineData("")]
    public async Task A_schema_that_is_not_a_plain_lower_case_name_is_refused_before_any_connection(string schema)
    {
        var options = new PostgresStoreOptions { ConnectionString = "Host=localhost", Schema = schema };
        var error = Assert.Single(options.FindErrors());
        Assert.Equal(nameof(PostgresStoreOptions.Schema), error.ParamName);
        // No server listens on the connection string's host: the options are refused before it is tried.
        await Assert.ThrowsAsync<ArgumentException>(() => PostgresQueuedWorkStore.OpenAsync(options, default));
    }

    [Fact]
    public void Every_bad_setting_is_named_at_once()
    {
        var options = new PostgresStoreOptions { ConnectionString = " ", Schema = "X", CommandTimeout = TimeSpan.FromMilliseconds(10) };
        Assert.Equal(
            [nameof(PostgresStoreOptions.ConnectionString), nameof(PostgresStoreOptions.Schema), nameof(PostgresStoreOptions.CommandTimeout)],
            options.FindErrors().Select(e => e.ParamName));
    }
}
