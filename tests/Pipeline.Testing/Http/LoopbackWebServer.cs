using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace Pipeline.Testing;

/// <summary>A real Kestrel server on a free 127.0.0.1 port (an xunit fixture), serving the routes a test class maps.</summary>
public abstract class LoopbackWebServer : IAsyncLifetime
{
    private WebApplication? _app;

    /// <summary>The server's address, ending in <c>/</c>.</summary>
    public Uri BaseAddress { get; private set; } = null!;

    /// <summary>Maps the routes the tests call.</summary>
    protected abstract void Map(WebApplication app);

    /// <summary>A body that never ends: 16 KiB chunks until the client goes away.</summary>
    public static async Task WriteEndlessBodyAsync(HttpContext context)
    {
        var chunk = new byte[16 * 1024];
        chunk.AsSpan().Fill((byte)'a');
        context.Response.ContentType = "text/plain";
        try
        {
            while (!context.RequestAborted.IsCancellationRequested)
            {
                await context.Response.Body.WriteAsync(chunk, context.RequestAborted);
            }
        }
        catch (Exception ex) when (ex is OperationCanceledException or IOException)
        {
            // the client stopped reading and dropped the connection: what a bounded reader does
        }
    }

    public async Task InitializeAsync()
    {
        var builder = WebApplication.CreateSlimBuilder();
        builder.WebHost.UseUrls("http://127.0.0.1:0");
        builder.Logging.ClearProviders();
        var app = builder.Build();
        Map(app);
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
