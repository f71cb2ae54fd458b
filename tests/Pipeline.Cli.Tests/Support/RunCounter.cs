using System.Collections.Concurrent;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace Pipeline.Cli.Tests.Support;

/// <summary>
/// A Kestrel server on 127.0.0.1 that counts tool runs: a command of the <c>http</c> tool calls
/// <c>GET /run/{id}?ms=N</c>, which is counted as it arrives and answers 200 after N ms. The count
/// is of runs the tool made, not of events a worker wrote about them (a killed worker's events
/// may be lost; its requests are not).
/// </summary>
public sealed class RunCounter : IAsyncLifetime
{
    private readonly ConcurrentDictionary<string, int> _runs = new(StringComparer.Ordinal);
    private WebApplication? _app;
    private long _total;

    public Uri BaseAddress { get; private set; } = null!;

    /// <summary>Runs counted so far, every id.</summary>
    public long Total => Interlocked.Read(ref _total);

    /// <summary>Ids run at least once so far.</summary>
    public int Distinct => _runs.Count;

    /// <summary>Runs of <paramref name="id"/> counted so far.</summary>
    public int Of(string id) => _runs.TryGetValue(id, out var n) ? n : 0;

    /// <summary>The command line of one run, for a worker: an <c>http</c> command that takes <paramref name="ms"/> at the server.</summary>
    public string Command(string id, int ms = 0, long execution = 1) =>
        $$$"""{"command_id":"{{{id}}}","execution_id":{{{execution}}},"step":"s","tool_kind":"http","input":{"url":"{{{new Uri(BaseAddress, $"run/{id}?ms={ms}")}}}"}}""";

    public async Task InitializeAsync()
    {
        var builder = WebApplication.CreateSlimBuilder();
        builder.WebHost.UseUrls("http://127.0.0.1:0");
        builder.Logging.ClearProviders();
        var app = builder.Build();
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
        await app.StartAsync();
        BaseAddress = new Uri(app.Services.GetRequiredService<IServer>().Features.GetRequiredFeature<IServerAddressesFeature>().Addresses.Single() + "/");
        _app = app;
    }

    public async Task DisposeAsync()
    {
        if (_app is not null)
        {
            await _app.DisposeAsync();
        }
    }
}
