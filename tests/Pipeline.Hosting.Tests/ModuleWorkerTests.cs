using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Options;
using Pipeline.Commands;
using Pipeline.Events;
using Pipeline.Modules;
using Pipeline.Testing.Modules;

namespace Pipeline.Hosting.Tests;

/// <summary>A backend the host has never heard of, plugged in with its one registration line.</summary>
public sealed class ModuleWorkerTests
{
    private static Command Noop(string id) => Command.Parse($$$"""{"command_id":"{{{id}}}","execution_id":1,"step":"s","tool_kind":"noop","input":{}}""");

    private static IHost Build(InMemoryModule module, Dictionary<string, string?> settings)
    {
        var builder = Host.CreateEmptyApplicationBuilder(new HostApplicationBuilderSettings());
        builder.Configuration.AddInMemoryCollection(settings);
        builder.AddPipelineWorker();
        builder.Services.AddPipelineModule(module);
        return builder.Build();
    }

    [Fact]
    public async Task A_backend_registered_with_one_line_serves_the_hosted_worker_its_source_claimer_and_sink()
    {
        var module = new InMemoryModule([Noop("a"), Noop("b"), Noop("a")]);
        using var host = Build(module, new()
        {
            ["Pipeline:Source"] = "memory",
            ["Pipeline:Claimer"] = "memory-once",
            ["Pipeline:Events"] = "memory",
            ["Pipeline:Memory:Name"] = "m",
        });
        var state = host.Services.GetRequiredService<PipelineWorkerState>();

        await host.RunAsync().WaitAsync(TimeSpan.FromSeconds(30));

        Assert.Null(state.Fault);
        var stats = await state.Started;
        // The claimer ran the duplicate once; the sink got every event; the source's end report reached the state.
        Assert.Equal((2L, 1L, 3L), (stats.Completed, stats.Skipped, stats.Acked));
        Assert.Equal(["a", "b"], module.Events.Where(e => e.EventType == EventTypes.CommandCompleted).Select(e => e.CommandId).Order());
        Assert.Equal(new WorkLeft("queue", "memory", 0, 0, 0), state.WorkLeft);
        Assert.True(module.Closed);
    }

    [Fact]
    public async Task A_backend_s_own_setting_that_cannot_work_fails_the_start_naming_its_key()
    {
        using var host = Build(new InMemoryModule([]), new() { ["Pipeline:Source"] = "memory" });

        var ex = await Assert.ThrowsAsync<OptionsValidationException>(() => host.StartAsync());

        Assert.Contains("Pipeline:Memory:Name is required with the memory module.", ex.Message, StringComparison.Ordinal);
    }
}
