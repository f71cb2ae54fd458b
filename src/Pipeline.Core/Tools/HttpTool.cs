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
/// as text; any other JSON value is sent as application/json), <c>timeout_ms</c> (default 30000).
/// The result is <c>{"status": N, "body": "..."}</c>. A non-2xx status is a failure, transient
/// for 408, 429 and 5xx; so are connection errors and timeouts.
/// </summary>
public sealed class HttpTool(HttpClient client) : ITool
{
    private const int MaxBodyCharacters = 64 * 1024;
    private static readonly TimeSpan DefaultTimeout = TimeSpan.FromSeconds(30);
    private readonly HttpClient _client = client ?? throw new ArgumentNullException(nameof(client));

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

        var method = new HttpMethod((ToolInput.OptionalString(Kind, input, "method") ?? "GET").ToUpperInvariant());
        var timeoutMs = ToolInput.OptionalNonNegativeInteger(Kind, input, "timeout_ms");
        var timeout = timeoutMs is { } ms ? TimeSpan.FromMilliseconds(ms) : DefaultTimeout;

        using var request = new HttpRequestMessage(method, uri);
        if (input.TryGetProperty("body", out var body) && body.ValueKind != JsonValueKind.Null)
        {
            request.Content = body.ValueKind == JsonValueKind.String
                ? new StringContent(body.GetString()!, Encoding.UTF8, "text/plain")
                : new StringContent(body.GetRawText(), Encoding.UTF8, "application/json");
        }

        foreach (var (name, value) in ToolInput.OptionalStringMap(Kind, input, "headers"))
        {
            if (!request.Headers.TryAddWithoutValidation(name, value))
            {
                request.Content ??= new ByteArrayContent([]);
                if (name.Equals("Content-Type", StringComparison.OrdinalIgnoreCase))
                {
                    request.Content.Headers.ContentType = MediaTypeHeaderValue.Parse(value);
                }
                else
                {
                    request.Content.Headers.TryAddWithoutValidation(name, value);
                }
            }
        }

        using var timeoutCts = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        timeoutCts.CancelAfter(timeout);
        HttpResponseMessage response;
        string responseBody;
        try
        {
            response = await _client.SendAsync(request, HttpCompletionOption.ResponseContentRead, timeoutCts.Token).ConfigureAwait(false);
            responseBody = await response.Content.ReadAsStringAsync(timeoutCts.Token).ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
        {
            return ToolResult.Failure($"http: {method} {uri} timed out after {timeout.TotalMilliseconds:0} ms.", transient: true);
        }
        catch (HttpRequestException ex)
        {
            return ToolResult.Failure($"http: {method} {uri} failed: {ex.Message}", transient: true);
        }

        using (response)
        {
            var status = (int)response.StatusCode;
            var result = JsonResult.Build((status, responseBody), static (w, s) =>
            {
                w.WriteStartObject();
                w.WriteNumber("status", s.status);
                w.WriteString("body", JsonResult.Truncate(s.responseBody, MaxBodyCharacters));
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
}
