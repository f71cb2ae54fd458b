using System.Text.Json;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Pipeline.Commands;
using Pipeline.Modules;
using Pipeline.Storage;
using Pipeline.Storage.Sqlite;

namespace Pipeline.Hosting.Tests;

/// <summary>A hosted worker on a SQLite file: <c>services.AddPipelineSqlite()</c> and <c>Pipeline:Source=sqlite</c>, nothing else.</summary>
public sealed class SqliteWorkerTests : IDisposable
{
    private readonly string _directory = Directory.CreateTempSubdirectory("pipeline-hosted-sqlite-").FullName;

    public void Dispose() => Directory.Delete(_directory, recursive: true);

    private IHost Build(Dictionary<string, string?> settings)
    {
        var builder = Host.CreateEmptyApplicationBuilder(new HostApplicationBuilderSettings());
        builder.Configuration.AddInMemoryCollection(settings);
        builder.AddPipelineWorker();
        builder.Services.AddPipelineSqlite();
        return builder.Build();
    }

    [Fact]
    public async Task The_one_registration_line_runs_a_hosted_worker_on_a_sqlite_file_until_it_is_drained()
    {
        var path = Path.Combine(_directory, "work.db");
        await using (var store = await SqliteQueuedWorkStore.OpenAsync(new SqliteStoreOptions { Path = path }))
        {
            var commands = Enumerable.Range(0, 20).Select(i => Command.Parse($$$"""{"command_id":"h{{{i}}}","execution_id":{{{i % 3}}},"step":"s","tool_kind":"noop","input":{}}"""));
            await store.EnqueueAsync([.. commands.Select(c => new QueuedBatchDraft { SessionId = c.ExecutionId.ToString(System.Globalization.CultureInfo.InvariantCulture), Payload = JsonSerializer.SerializeToUtf8Bytes(c), IdempotencyKey = c.CommandId })], CancellationToken.None);
        }

        using var host = Build(new()
        {
            ["Pipeline:Source"] = "sqlite",
            ["Pipeline:Sqlite:Store:Path"] = path,
            ["Pipeline:Sqlite:Source:IdleTimeout"] = "00:00:01",
            ["Pipeline:SetExitCode"] = "false",
        });
        var state = host.Services.GetRequiredService<PipelineWorkerState>();

        await host.RunAsync().WaitAsync(TimeSpan.FromSeconds(60));

        Assert.Null(state.Fault);
        Assert.Equal((PipelineWorkerOutcome.Succeeded, 20L), (state.Outcome, (await state.Started).Completed));
        Assert.Equal(new WorkLeft("store", path, 0, 0, 0) { InProgressAs = "claimed by other workers", WaitingAs = "pending", Hint = "run a worker again (it finishes what is pending, and takes over a stopped worker's claims once their leases lapse, 30 s)" }, state.WorkLeft);
        await using var check = await SqliteQueuedWorkStore.OpenAsync(new SqliteStoreOptions { Path = path });
        Assert.Equal(20, (await check.SummarizeAsync(0, CancellationToken.None)).Completed);
    }

    [Fact]
    public async Task A_file_that_cannot_be_used_fails_the_hosted_worker_with_exit_code_1_and_its_reason()
    {
        using var host = Build(new()
        {
            ["Pipeline:Source"] = "sqlite",
            ["Pipeline:Sqlite:Store:Path"] = _directory,
            ["Pipeline:SetExitCode"] = "false",
        });
        var state = host.Services.GetRequiredService<PipelineWorkerState>();

        await host.RunAsync().WaitAsync(TimeSpan.FromSeconds(60));

        Assert.Equal((PipelineWorkerOutcome.Faulted, 1), (state.Outcome, state.ExitCode));
        var fault = Assert.IsType<ModuleRunException>(state.Fault);
        Assert.Equal($"The SQLite store '{_directory}' cannot be used: it is a directory, not a file. Nothing was claimed.", fault.Message);
    }
}
