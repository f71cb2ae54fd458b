namespace Pipeline.Tests.Tools;

/// <summary>The http tool's bounds: a streamed body capped at the output limit, a timeout over headers and body, input errors.</summary>
public sealed class HttpToolBoundsTests(LoopbackHttpServer server) : IClassFixture<LoopbackHttpServer>, IDisposable
{
    private const int Cap = BuiltInToolOptions.DefaultMaxOutputBytes;
    private readonly HttpClient _client = HttpTool.CreateDefaultClient();

    public void Dispose() => _client.Dispose();

    private async Task<ToolResult> Invoke(object input, int maxOutputBytes = Cap) =>
        await new HttpTool(_client, maxOutputBytes).InvokeAsync(TestCommands.Make("h", "http", JsonSerializer.Serialize(input)), default);

    private string Url(string path) => new Uri(server.BaseAddress, path).ToString();

    [Fact]
    public async Task A_big_body_keeps_the_cap_and_says_truncated()
    {
        var result = await Invoke(new { url = Url("/big/1000000") });

        Assert.True(result.IsSuccess, result.Error);
        Assert.Equal(new string('a', Cap), result.Value.GetProperty("body").GetString());
        Assert.True(result.Value.GetProperty("truncated").GetBoolean());
    }

    [Fact]
    public async Task A_body_of_exactly_the_cap_is_whole()
    {
        var result = await Invoke(new { url = Url($"/big/{Cap}") });

        Assert.Equal(Cap, result.Value.GetProperty("body").GetString()!.Length);
        Assert.False(result.Value.GetProperty("truncated").GetBoolean());
    }

    [Fact]
    public async Task An_endless_body_stops_at_the_cap_well_within_the_timeout()
    {
        var clock = Stopwatch.StartNew();

        var result = await Invoke(new { url = Url("/endless"), timeout_ms = 20_000 });

        Assert.True(result.IsSuccess, result.Error);
        Assert.Equal(Cap, result.Value.GetProperty("body").GetString()!.Length);
        Assert.True(result.Value.GetProperty("truncated").GetBoolean());
        Assert.True(clock.Elapsed < TimeSpan.FromSeconds(10), $"took {clock.Elapsed}");

        // The connection it dropped does not spoil the next request on the same client.
        var next = await Invoke(new { url = Url("/ok") });
        Assert.Equal("hello", next.Value.GetProperty("body").GetString());
    }

    [Fact]
    public async Task A_per_command_cap_lowers_the_run_cap()
    {
        var result = await Invoke(new { url = Url("/endless"), max_output_bytes = 1000 });

        Assert.Equal(new string('a', 1000), result.Value.GetProperty("body").GetString());
        Assert.True(result.Value.GetProperty("truncated").GetBoolean());
    }

    [Fact]
    public async Task A_multi_byte_character_cut_at_the_cap_is_dropped_not_garbled()
    {
        var whole = await Invoke(new { url = Url("/utf8") });
        var cut = await Invoke(new { url = Url("/utf8"), max_output_bytes = 2 });

        Assert.Equal("a\u00e9b", whole.Value.GetProperty("body").GetString());
        Assert.Equal("a", cut.Value.GetProperty("body").GetString());
        Assert.True(cut.Value.GetProperty("truncated").GetBoolean());
    }

    [Fact]
    public async Task The_timeout_covers_the_body_not_only_the_headers()
    {
        var clock = Stopwatch.StartNew();

        var result = await Invoke(new { url = Url("/slow-body"), timeout_ms = 300 });

        Assert.False(result.IsSuccess);
        Assert.True(result.IsTransient);
        Assert.Contains("timed out after 300 ms", result.Error);
        Assert.True(clock.Elapsed < TimeSpan.FromSeconds(5), $"took {clock.Elapsed}");
    }

    [Theory]
    [InlineData("""{"url": "http://127.0.0.1/", "max_output_bytes": 65537}""", "http: input.max_output_bytes is 65537, above this run's output limit of 65536 bytes.")]
    [InlineData("""{"url": "http://127.0.0.1/", "max_output_bytes": -1}""", "http: input.max_output_bytes must be a positive integer, not -1.")]
    [InlineData("""{"url": "http://127.0.0.1/", "timeout_ms": 4294967295}""", "http: input.timeout_ms must be at most 2147483647 ms (about 24.8 days), not 4294967295.")]
    [InlineData("""{"url": "http://127.0.0.1/", "timeout_ms": true}""", "http: input.timeout_ms must be a non-negative integer, not true.")]
    [InlineData("""{"url": 80}""", "http: input.url must be a string, not number.")]
    [InlineData("""{"url": "http://127.0.0.1/", "method": "GE T"}""", "http: input.method 'GE T' is not a valid HTTP method.")]
    [InlineData("""{"url": "http://127.0.0.1/", "method": 1}""", "http: input.method must be a string, not number.")]
    [InlineData("""{"url": "http://127.0.0.1/", "headers": {"X-A": "a\r\nX-Injected: 1"}}""", "http: input.headers.X-A must not contain CR, LF or NUL.")]
    [InlineData("""{"url": "http://127.0.0.1/", "headers": {"bad name": "x"}}""", "http: input.headers has 'bad name', which is not a valid header name.")]
    [InlineData("""{"url": "http://127.0.0.1/", "headers": {"Content-Type": "not a type"}}""", "http: input.headers.Content-Type 'not a type' is not a valid media type.")]
    [InlineData("""{"url": "http://127.0.0.1/", "headers": {"X-A": 1}}""", "http: input.headers.X-A must be a string, not number.")]
    public async Task Bad_input_is_a_ToolInputException_with_a_clear_message(string input, string expected)
    {
        var ex = await Assert.ThrowsAsync<ToolInputException>(async () => await new HttpTool(_client).InvokeAsync(TestCommands.Make("h", "http", input), default));

        Assert.Equal(expected, ex.Message);
    }
}
