using System.Text;
using System.Text.Json;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using NATS.Client.JetStream;
using NATS.Client.JetStream.Models;
using Pipeline.Hosting.Tests.Support;

namespace Pipeline.Hosting.Tests;

/// <summary>The hosted worker on a real nats-server, through the NATS module's one registration line.</summary>
[Collection(NatsCollection.Name)]
public sealed class NatsWorkerTests(NatsServerFixture nats) : IDisposable
{
    private readonly string _directory = Directory.CreateTempSubdirectory("pipeline-hosting-nats-").FullName;

    public void Dispose() => Directory.Delete(_directory, recursive: true);

    private async Task<string> CreateStreamAsync(string prefix)
    {
        var stream = NatsServerFixture.UniqueName(prefix);
        await using var connection = nats.Connect();
        await new NatsJSContext(connection).CreateStreamAsync(new StreamConfig(stream, [$"{stream}.>"]));
        return stream;
    }

    private async Task PublishAsync(string subject, IEnumerable<string> bodies)
    {
        await using var connection = nats.Connect();
        var js = new NatsJSContext(connection);
        foreach (var body in bodies)
        {
            (await js.PublishAsync(subject, Encoding.UTF8.GetBytes(body))).EnsureSuccess();
        }
    }

    private IHost Build(string stream, Dictionary<string, string?> extra)
    {
        var builder = Host.CreateEmptyApplicationBuilder(new HostApplicationBuilderSettings());
        builder.Configuration.AddInMemoryCollection(new Dictionary<string, string?>
        {
            ["Pipeline:Source"] = "nats",
            ["Pipeline:Nats:Connection:Url"] = nats.Url,
            ["Pipeline:Nats:Source:Stream"] = stream,
            ["Pipeline:Nats:Source:Subjects:0"] = $"{stream}.>",
            ["Pipeline:Nats:Source:Consumer"] = $"{stream}_workers",
            ["Pipeline:Nats:Source:IdleTimeout"] = "00:00:01",
        });
        builder.Configuration.AddInMemoryCollection(extra);
        builder.AddPipelineWorker();
        builder.Services.AddPipelineNats();
        return builder.Build();
    }

    private static string Echo(string id) => $$$"""{"command_id": "{{{id}}}", "execution_id": 7, "step": "s", "tool_kind": "echo", "input": {"message": "{{{id}}}"}}""";

    [Fact]
    public async Task A_hosted_nats_worker_runs_what_the_stream_holds_and_at_its_idle_end_says_the_consumer_holds_nothing()
    {
        var stream = await CreateStreamAsync("hosted");
        await PublishAsync($"{stream}.cmd", Enumerable.Range(1, 20).Select(i => Echo($"c{i}")));
        var events = Path.Combine(_directory, "events.jsonl");
        using var host = Build(stream, new() { ["Pipeline:Events"] = events });
        var state = host.Services.GetRequiredService<PipelineWorkerState>();

        // Ends by itself: nothing arrives for the idle timeout, and the worker stops the host.
        await host.RunAsync().WaitAsync(TimeSpan.FromSeconds(60));

        Assert.Null(state.Fault);
        Assert.True(state.SourceExhausted);
        var stats = await state.Started;
        Assert.Equal(20, stats.Completed);
        Assert.Equal(20, stats.Acked);
        var completed = File.ReadAllLines(events).Count(l => JsonDocument.Parse(l).RootElement.GetProperty("event_type").GetString() == "command.completed");
        Assert.Equal(20, completed);
        var left = Assert.IsType<Pipeline.Modules.WorkLeft>(state.WorkLeft);
        Assert.Equal(("consumer", $"{stream}_workers", 0L, 0L), (left.Holder, left.Name, left.InProgress, left.Waiting));
    }

    [Theory]
    [InlineData("Pipeline:Claimer", "nats-kv")]
    [InlineData("Pipeline:Nats:KvClaimer", "true")]
    public async Task The_kv_claimer_chosen_by_its_kind_or_by_the_older_key_runs_a_command_published_twice_once(string key, string value)
    {
        var stream = await CreateStreamAsync("hostedkv");
        // The same command_id stored twice (no Nats-Msg-Id, so the stream keeps both).
        await PublishAsync($"{stream}.cmd", [Echo("twice"), Echo("twice"), Echo("once")]);
        using var host = Build(stream, new() { [key] = value, ["Pipeline:Nats:Claimer:Bucket"] = NatsServerFixture.UniqueName("claims") });
        var state = host.Services.GetRequiredService<PipelineWorkerState>();

        await host.RunAsync().WaitAsync(TimeSpan.FromSeconds(60));

        Assert.Null(state.Fault);
        var stats = await state.Started;
        Assert.Equal((2L, 1L), (stats.Completed, stats.Skipped));
        Assert.Equal(3, stats.Acked);
    }
}
