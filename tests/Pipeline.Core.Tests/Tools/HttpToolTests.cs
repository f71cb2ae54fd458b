using System.Net;
using System.Net.Sockets;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;

namespace Pipeline.Tests.Tools;

/// <summary>A real Kestrel server on 127.0.0.1, shared by the HTTP tool's tests.</summary>
public sealed class LoopbackHttpServer : LoopbackWebServer
{
    protected override void Map(WebApplication app)
    {
        app.MapGet("/ok", () => "hello");
        app.MapPost("/echo", async (HttpRequest request) =>
        {
            using var reader = new StreamReader(request.Body);
            var body = await reader.ReadToEndAsync();
            return Results.Json(new Dictionary<string, string?>
            {
                ["method"] = request.Method,
                ["content_type"] = request.ContentType,
                ["x_test"] = request.Headers["X-Test"].ToString(),
                ["body"] = body,
            });
        });
        app.MapGet("/status/{code:int}", (int code) => Results.Text($"status body {code}", statusCode: code));
        app.MapGet("/slow", async (HttpContext context) =>
        {
            await Task.Delay(Timeout.InfiniteTimeSpan, context.RequestAborted);
            return "never";
        });
        app.MapGet("/big/{bytes:int}", (int bytes) => Results.Text(new string('a', bytes)));
        app.MapGet("/utf8", () => Results.Text("a\u00e9b", "text/plain; charset=utf-8"));
        app.MapGet("/endless", WriteEndlessBodyAsync);
        app.MapGet("/slow-body", async (HttpContext context) =>
        {
            await context.Response.WriteAsync("first");
            await context.Response.Body.FlushAsync(context.RequestAborted);
            await Task.Delay(Timeout.InfiniteTimeSpan, context.RequestAborted);
        });
    }
}

public sealed class HttpToolTests(LoopbackHttpServer server) : IClassFixture<LoopbackHttpServer>, IDisposable
{
    private readonly HttpClient _client = HttpTool.CreateDefaultClient();

    public void Dispose() => _client.Dispose();

    private async Task<Pipeline.Dispatch.ToolResult> Invoke(object input, CancellationToken cancellationToken = default) =>
        await new HttpTool(_client).InvokeAsync(TestCommands.Make("h", "http", JsonSerializer.Serialize(input)), cancellationToken);

    private string Url(string path) => new Uri(server.BaseAddress, path).ToString();

    [Fact]
    public async Task A_2xx_response_is_a_success_carrying_status_and_body()
    {
        var result = await Invoke(new { url = Url("/ok") });

        Assert.True(result.IsSuccess, result.Error);
        Assert.Equal(200, result.Value.GetProperty("status").GetInt32());
        Assert.Equal("hello", result.Value.GetProperty("body").GetString());
    }

    [Fact]
    public async Task Method_headers_and_a_json_body_are_sent()
    {
        var result = await Invoke(new
        {
            url = Url("/echo"),
            method = "post",
            headers = new Dictionary<string, string> { ["X-Test"] = "yes" },
            body = new { a = 1 },
        });

        Assert.True(result.IsSuccess, result.Error);
        using var echoed = JsonDocument.Parse(result.Value.GetProperty("body").GetString()!);
        Assert.Equal("POST", echoed.RootElement.GetProperty("method").GetString());
        Assert.StartsWith("application/json", echoed.RootElement.GetProperty("content_type").GetString());
        Assert.Equal("yes", echoed.RootElement.GetProperty("x_test").GetString());
        Assert.Equal("""{"a":1}""", echoed.RootElement.GetProperty("body").GetString());
    }

    [Fact]
    public async Task A_string_body_is_sent_as_text()
    {
        var result = await Invoke(new { url = Url("/echo"), method = "POST", body = "plain words" });

        using var echoed = JsonDocument.Parse(result.Value.GetProperty("body").GetString()!);
        Assert.StartsWith("text/plain", echoed.RootElement.GetProperty("content_type").GetString());
        Assert.Equal("plain words", echoed.RootElement.GetProperty("body").GetString());
    }

    [Theory]
    [InlineData(404, false)]
    [InlineData(400, false)]
    [InlineData(429, true)]
    [InlineData(503, true)]
    public async Task A_non_2xx_response_is_a_failure_with_status_and_body(int status, bool transient)
    {
        var result = await Invoke(new { url = Url($"/status/{status}") });

        Assert.False(result.IsSuccess);
        Assert.Equal(transient, result.IsTransient);
        Assert.Contains($"returned {status}", result.Error);
        Assert.Equal(status, result.Value.GetProperty("status").GetInt32());
        Assert.Equal($"status body {status}", result.Value.GetProperty("body").GetString());
    }

    [Fact]
    public async Task A_response_slower_than_timeout_ms_is_a_transient_timeout()
    {
        var result = await Invoke(new { url = Url("/slow"), timeout_ms = 200 });

        Assert.False(result.IsSuccess);
        Assert.True(result.IsTransient);
        Assert.Contains("timed out after 200 ms", result.Error);
    }

    [Fact]
    public async Task A_refused_connection_is_a_transient_failure()
    {
        // A port that was just free on loopback: nothing listens there.
        var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        var port = ((IPEndPoint)listener.LocalEndpoint).Port;
        listener.Stop();

        var result = await Invoke(new { url = $"http://127.0.0.1:{port}/" });

        Assert.False(result.IsSuccess);
        Assert.True(result.IsTransient);
        Assert.Contains("failed", result.Error);
    }

    [Fact]
    public async Task Cancellation_by_the_pipeline_is_not_reported_as_a_timeout()
    {
        using var cts = new CancellationTokenSource(TimeSpan.FromMilliseconds(100));

        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => Invoke(new { url = Url("/slow") }, cts.Token));
    }

    [Theory]
    [InlineData("""{"method": "GET"}""", "input.url")]
    [InlineData("""{"url": "ftp://127.0.0.1/x"}""", "absolute http or https URL")]
    [InlineData("""{"url": "/relative"}""", "absolute http or https URL")]
    [InlineData("""{"url": "http://127.0.0.1/", "headers": ["x"]}""", "headers")]
    [InlineData("""[1, 2]""", "object")]
    public async Task Bad_input_is_a_ToolInputException_naming_the_problem(string input, string expected)
    {
        var tool = new HttpTool(_client);

        var ex = await Assert.ThrowsAsync<ToolInputException>(async () => await tool.InvokeAsync(TestCommands.Make("h", "http", input), default));

        Assert.Contains(expected, ex.Message);
        Assert.StartsWith("http:", ex.Message);
    }
}
