using System.Net;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;
using Pipeline.Commands;
using Pipeline.Dispatch;

namespace Pipeline.Tools;

/// <summary>
/// <c>http</c>: sends one request. Input: <c>url</c> (absolute http/https, required),
/// <c>method</c> (default GET), <c>headers</c> (object of strings), <c>body</c> (a string is sent
/// as text; any other JSON value is sent as application/json), <c>timeout_ms</c> (default 30000,
/// at most <see cref="int.MaxValue"/>; covers the response headers and the whole body),
/// <c>max_output_bytes</c> (1 to the run's <see cref="BuiltInToolOptions.MaxOutputBytes"/>, which
/// is the default). The result is <c>{"status": N, "body": "...", "truncated": bool}</c>: the body
/// is streamed and reading stops at the output limit (the connection is then dropped), so an
/// endless body costs no more than the limit. A non-2xx status is a failure, transient for 408,
/// 429 and 5xx; so are connection errors and timeouts.
/// </summary>
public sealed class HttpTool : ITool
{
    private static readonly TimeSpan DefaultTimeout = TimeSpan.FromSeconds(30);
    private readonly HttpClient? _client;
    private readonly IHttpClientFactory? _clients;
    private readonly int _maxOutputBytes;

    /// <summary>Creates the tool with the default output limit (64 KiB).</summary>
    public HttpTool(HttpClient client)
        : this(client, BuiltInToolOptions.DefaultMaxOutputBytes)
    {
    }

    /// <summary>Creates the tool with an output limit from 1 to <see cref="BuiltInToolOptions.HardMaxOutputBytes"/>.</summary>
    public HttpTool(HttpClient client, int maxOutputBytes)
    {
        _client = client ?? throw new ArgumentNullException(nameof(client));
        _maxOutputBytes = BuiltInToolOptions.ValidateMaxOutputBytes(maxOutputBytes, nameof(maxOutputBytes));
    }

    /// <summary>
    /// Creates the tool on <paramref name="clients"/>: a client named <see cref="HttpClientName"/>
    /// for each request, as the factory means its clients to be used (its handlers are pooled and
    /// recycled, so DNS changes are seen). Configure that client (<c>services.AddHttpClient(HttpTool.HttpClientName)</c>)
    /// with no client-wide timeout: the tool sets its own.
    /// </summary>
    public HttpTool(IHttpClientFactory clients, int maxOutputBytes = BuiltInToolOptions.DefaultMaxOutputBytes)
    {
        _clients = clients ?? throw new ArgumentNullException(nameof(clients));
        _maxOutputBytes = BuiltInToolOptions.ValidateMaxOutputBytes(maxOutputBytes, nameof(maxOutputBytes));
    }

    /// <summary>The name of the client the tool takes from an <see cref="IHttpClientFactory"/>: <c>Pipeline.Http</c>.</summary>
    public const string HttpClientName = "Pipeline.Http";

    /// <inheritdoc/>
    public string Kind => "http";

    /// <summary>A client for the tool: pooled connections recycled every 2 minutes, no client-wide timeout (the tool sets its own).</summary>
    public static HttpClient CreateDefaultClient() =>
        new(new SocketsHttpHandler { PooledConnectionLifetime = TimeSpan.FromMinutes(2) })
        {
            Timeout = Timeout.InfiniteTimeSpan,
        };

    /// <inheritdoc/>
    public async ValueTask<ToolResult> InvokeAsync(Command command, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(command);
        var input = ToolInput.RequireObject(Kind, command.Input);
        var url = ToolInput.RequireString(Kind, input, "url");
        if (!Uri.TryCreate(url, UriKind.Absolute, out var uri) || (uri.Scheme != Uri.UriSchemeHttp && uri.Scheme != Uri.UriSchemeHttps))
        {
            throw new ToolInputException($"http: input.url must be an absolute http or https URL, not '{url}'.");
        }

        var method = ParseMethod(ToolInput.OptionalString(Kind, input, "method") ?? "GET");
        var timeout = ToolInput.OptionalMilliseconds(Kind, input, "timeout_ms") is { } ms ? TimeSpan.FromMilliseconds(ms) : DefaultTimeout;
        var maxOutput = ToolInput.OutputLimit(Kind, input, "max_output_bytes", _maxOutputBytes);

        using var request = new HttpRequestMessage(method, uri);
        if (input.TryGetProperty("body", out var body) && body.ValueKind != JsonValueKind.Null)
        {
            request.Content = body.ValueKind == JsonValueKind.String
                ? new StringContent(body.GetString()!, Encoding.UTF8, "text/plain")
                : new StringContent(body.GetRawText(), Encoding.UTF8, "application/json");
        }

        foreach (var (name, value) in ToolInput.OptionalStringMap(Kind, input, "headers"))
        {
            AddHeader(request, name, value);
        }

        using var timeoutCts = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        timeoutCts.CancelAfter(timeout);
        using var responseBody = new BoundedOutput(maxOutput);
        HttpResponseMessage? response = null;
        try
        {
            // Headers only: the body is streamed into the bounded buffer, never buffered whole.
            var client = _client ?? _clients!.CreateClient(HttpClientName);
            response = await client.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, timeoutCts.Token).ConfigureAwait(false);
            var stream = await response.Content.ReadAsStreamAsync(timeoutCts.Token).ConfigureAwait(false);
            await using (stream.ConfigureAwait(false))
            {
                await responseBody.ReadFromAsync(stream, drainPastLimit: false, timeoutCts.Token).ConfigureAwait(false);
            }
        }
        catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
        {
            response?.Dispose();
            return ToolResult.Failure($"http: {method} {uri} timed out after {timeout.TotalMilliseconds:0} ms.", transient: true);
        }
        catch (Exception ex) when (ex is HttpRequestException or IOException)
        {
            response?.Dispose();
            return ToolResult.Failure($"http: {method} {uri} failed: {ex.Message}", transient: true);
        }
        catch
        {
            response?.Dispose();
            throw;
        }

        using (response)
        {
            var status = (int)response.StatusCode;
            var result = JsonResult.Build((status, text: responseBody.Decode(CharsetOf(response)), responseBody.Truncated), static (w, s) =>
            {
                w.WriteStartObject();
                w.WriteNumber("status", s.status);
                w.WriteString("body", s.text);
                w.WriteBoolean("truncated", s.Truncated);
                w.WriteEndObject();
            });
            if (response.IsSuccessStatusCode)
            {
                return ToolResult.Success(result);
            }

            var transient = response.StatusCode is HttpStatusCode.RequestTimeout or HttpStatusCode.TooManyRequests || status >= 500;
            return ToolResult.Failure($"http: {method} {uri} returned {status} {response.ReasonPhrase}.", transient, result);
        }
    }

    private static HttpMethod ParseMethod(string method)
    {
        try
        {
            return new HttpMethod(method.ToUpperInvariant());
        }
        catch (Exception ex) when (ex is FormatException or ArgumentException)
        {
            throw new ToolInputException($"http: input.method '{method}' is not a valid HTTP method.", ex);
        }
    }

    private static void AddHeader(HttpRequestMessage request, string name, string value)
    {
        // A header value may not break the request's framing; refused here rather than as a transient send failure.
        if (value.AsSpan().IndexOfAny('\r', '\n', '\0') >= 0)
        {
            throw new ToolInputException($"http: input.headers.{name} must not contain CR, LF or NUL.");
        }

        if (request.Headers.TryAddWithoutValidation(name, value))
        {
            return;
        }

        request.Content ??= new ByteArrayContent([]);
        try
        {
            if (name.Equals("Content-Type", StringComparison.OrdinalIgnoreCase))
            {
                request.Content.Headers.ContentType = MediaTypeHeaderValue.Parse(value);
                return;
            }
        }
        catch (FormatException ex)
        {
            throw new ToolInputException($"http: input.headers.Content-Type '{value}' is not a valid media type.", ex);
        }

        if (!request.Content.Headers.TryAddWithoutValidation(name, value))
        {
            throw new ToolInputException($"http: input.headers has '{name}', which is not a valid header name.");
        }
    }

    // The charset the server named, as ReadAsStringAsync would use; UTF-8 when none or unknown.
    private static Encoding? CharsetOf(HttpResponseMessage response)
    {
        var charset = response.Content.Headers.ContentType?.CharSet?.Trim('"');
        if (string.IsNullOrEmpty(charset))
        {
            return null;
        }

        try
        {
            return Encoding.GetEncoding(charset);
        }
        catch (ArgumentException)
        {
            return null;
        }
    }
}
