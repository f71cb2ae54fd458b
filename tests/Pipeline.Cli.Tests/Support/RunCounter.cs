using System.Collections.Concurrent;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;

namespace Pipeline.Cli.Tests.Support;

/// <summary>
/// A Kestrel server on 127.0.0.1 that counts tool runs: a command of the <c>http</c> tool calls
/// <c>GET /run/{id}?ms=N</c>, which is counted as it arrives and answers 200 after N ms. The count
/// is of runs the tool made, not of events a worker wrote about them (a killed worker's events
/// may be lost; its requests are not).
/// </summary>
public sealed class RunCounter : LoopbackWebServer
{
    private readonly ConcurrentDictionary<string, int> _runs = new(StringComparer.Ordinal);
    private long _total;

    /// <summary>Runs counted so far, every id.</summary>
    public long Total => Interlocked.Read(ref _total);

    /// <summary>Ids run at least once so far.</summary>
    public int Distinct => _runs.Count;

    /// <summary>Runs of <paramref name="id"/> counted so far.</summary>
    public int Of(string id) => _runs.TryGetValue(id, out var n) ? n : 0;

    /// <summary>The command line of one run, for a worker: an <c>http</c> command that takes <paramref name="ms"/> at the server.</summary>
    public string Command(string id, int ms = 0, long execution = 1) =>
        $$$"""{"command_id":"{{{id}}}","execution_id":{{{execution}}},"step":"s","tool_kind":"http","input":{"url":"{{{new Uri(BaseAddress, $"run/{id}?ms={ms}")}}}"}}""";

    /// <summary>
    /// Waits until <paramref name="count"/> of <paramref name="ids"/> have run at least once;
    /// fails past <paramref name="bound"/> or once <paramref name="worker"/> has exited (it would never get there).
    /// </summary>
    internal async Task WaitForRunsAsync(IReadOnlyCollection<string> ids, int count, PipelineProcess worker, TimeSpan bound)
    {
        var started = Stopwatch.StartNew();
        while (ids.Count(id => Of(id) > 0) < count)
        {
            Assert.True(started.Elapsed < bound && !worker.HasExited, $"the worker ran {Total}\n{worker.Stdout}\n{worker.Stderr}");
            await Task.Delay(5);
        }
    }

    /// <summary>Runs a worker (<paramref name="args"/>) in <paramref name="directory"/> and kills it (-9) once <paramref name="count"/> of <paramref name="ids"/> have run: a crash mid-run, claims still held.</summary>
    internal async Task KillWorkerMidRunAsync(string[] args, string directory, IReadOnlyCollection<string> ids, int count, TimeSpan bound)
    {
        using var worker = PipelineProcess.Start(args, workingDirectory: directory);
        await WaitForRunsAsync(ids, count, worker, bound);
        worker.Signal(PipelineProcess.SigKill);
        await worker.WaitForExitAsync(bound);
    }

    protected override void Map(WebApplication app)
    {
        app.MapGet("/run/{id}", async (string id, int? ms, HttpContext context) =>
        {
            _runs.AddOrUpdate(id, 1, static (_, n) => n + 1);
            Interlocked.Increment(ref _total);
            if (ms is > 0)
            {
                await Task.Delay(ms.Value, context.RequestAborted);
            }

            return Results.Text("{}", "application/json");
        });
    }
}
