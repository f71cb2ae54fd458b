using Microsoft.Extensions.DependencyInjection;
using Pipeline.Tests.Tools;

namespace Pipeline.Tests.Dispatch;

/// <summary>Tools registered in DI by kind (<c>AddPipelineTool</c>), the built-in ones the same way, and the registry built from them.</summary>
public sealed class PipelineToolServiceCollectionExtensionsTests(LoopbackHttpServer server) : IClassFixture<LoopbackHttpServer>
{
    private static ToolRegistry Build(IServiceCollection services) =>
        services.BuildServiceProvider(new ServiceProviderOptions { ValidateScopes = true, ValidateOnBuild = true })
            .GetRequiredService<ToolRegistryFactory>().Create();

    [Fact]
    public void Two_registrations_of_one_kind_are_refused_naming_the_kind_and_both_types()
    {
        var services = new ServiceCollection();
        services.AddPipelineTool<ProbeTool>("upper");

        var ex = Assert.Throws<InvalidOperationException>(() => services.AddPipelineTool<OwnKindTool>("upper", ServiceLifetime.Singleton));

        Assert.Equal(
            "tool_kind 'upper' is registered twice, for Pipeline.Tests.Dispatch.ProbeTool and for Pipeline.Tests.Dispatch.PipelineToolServiceCollectionExtensionsTests+OwnKindTool: register one tool per kind.",
            ex.Message);
    }

    [Fact]
    public void A_kind_a_built_in_tool_has_is_taken()
    {
        var services = new ServiceCollection().AddPipelineBuiltInTools();

        var ex = Assert.Throws<InvalidOperationException>(() => services.AddPipelineTool<ProbeTool>("echo"));

        Assert.Contains("'echo'", ex.Message, StringComparison.Ordinal);
        Assert.Contains("Pipeline.Tools.EchoTool", ex.Message, StringComparison.Ordinal);
        Assert.Contains("Pipeline.Tests.Dispatch.ProbeTool", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Kinds_differing_only_in_case_are_two_kinds()
    {
        var services = new ServiceCollection().AddPipelineBuiltInTools();
        services.AddSingleton<Journal>().AddScoped<Letters>().AddPipelineTool<ProbeTool>("Echo");

        var tools = Build(services);

        Assert.Equal("Echo, delay, echo, http, noop", tools.KnownKinds); // ordinal order
    }

    [Fact]
    public void The_built_in_tools_are_registered_as_singletons_and_held_themselves_with_shell_off()
    {
        var services = new ServiceCollection().AddPipelineBuiltInTools();

        var tools = Build(services);

        Assert.Equal("delay, echo, http, noop", tools.KnownKinds);
        Assert.True(tools.TryGet("noop", out var noop) && noop is NoopTool);
        Assert.True(tools.TryGet("delay", out var delay) && delay is DelayTool);
        Assert.True(tools.TryGet("echo", out var echo) && echo is EchoTool);
        Assert.True(tools.TryGet("http", out var http) && http is HttpTool);
        var registrations = services.BuildServiceProvider().GetServices<PipelineToolRegistration>().ToList();
        Assert.Equal(["noop", "delay", "echo", "http", "shell"], registrations.Select(r => r.Kind));
        Assert.All(registrations, r => Assert.Equal(ServiceLifetime.Singleton, r.Lifetime));
        Assert.Equal(typeof(ShellTool), registrations[^1].ToolType);
    }

    [Fact]
    public async Task The_last_options_given_are_the_ones_the_built_in_tools_use_and_shell_is_on_with_them()
    {
        var services = new ServiceCollection().AddPipelineBuiltInTools();
        services.AddPipelineBuiltInTools(_ => new BuiltInToolOptions { EnableShell = true, MaxOutputBytes = 8 });

        var tools = Build(services);

        Assert.Equal("delay, echo, http, noop, shell", tools.KnownKinds);
        Assert.True(tools.TryGet("echo", out var echo));
        var result = await echo.InvokeAsync(TestCommands.Make("e", "echo", """{"text": "longer than eight bytes"}"""), default);
        Assert.Equal("""{"truncated":true,"input_bytes":35}""", result.Value.GetRawText());
    }

    [Fact]
    public async Task The_http_tool_takes_its_client_from_the_client_factory_as_configured_there()
    {
        var counting = new CountingHandler();
        var services = new ServiceCollection().AddPipelineBuiltInTools();
        services.AddHttpClient(HttpTool.HttpClientName).AddHttpMessageHandler(() => counting);
        await using var provider = services.BuildServiceProvider();
        Assert.True(provider.GetRequiredService<ToolRegistryFactory>().Create().TryGet("http", out var http));

        var result = await http.InvokeAsync(TestCommands.Make("h", "http", $$"""{"url": "{{new Uri(server.BaseAddress, "/ok")}}"}"""), default);

        Assert.True(result.IsSuccess, result.Error);
        Assert.Equal("hello", result.Value.GetProperty("body").GetString());
        Assert.Equal(1, counting.Requests);
        // The tool's own timeout_ms (30 s by default, up to 24.8 days) rules, not a client-wide 100 s.
        Assert.Equal(Timeout.InfiniteTimeSpan, provider.GetRequiredService<IHttpClientFactory>().CreateClient(HttpTool.HttpClientName).Timeout);
    }

    [Fact]
    public async Task A_tool_is_served_under_the_kind_it_is_registered_for_whatever_its_own_kind_says()
    {
        var services = new ServiceCollection();
        services.AddPipelineTool<OwnKindTool>("renamed", ServiceLifetime.Singleton);
        services.AddPipelineTool<OwnKindTool>("renamed-scoped");

        var tools = Build(services);

        Assert.Equal("renamed, renamed-scoped", tools.KnownKinds);
        Assert.True(tools.TryGet("renamed", out var singleton));
        Assert.Equal("renamed", singleton.Kind);
        Assert.True((await singleton.InvokeAsync(TestCommands.Make("r", "renamed"), default)).IsSuccess);
        Assert.True(tools.TryGet("renamed-scoped", out var scoped));
        Assert.Equal("renamed-scoped", scoped.Kind);
        Assert.True((await scoped.InvokeAsync(TestCommands.Make("s", "renamed-scoped"), default)).IsSuccess);
    }

    [Fact]
    public void A_tool_made_by_a_factory_is_registered_for_its_kind()
    {
        var services = new ServiceCollection();
        services.AddPipelineTool("made", _ => new OwnKindTool());

        var tools = Build(services);

        Assert.True(tools.TryGet("made", out var made));
        Assert.Equal("made", made.Kind);
    }

    [Fact]
    public void A_kind_that_is_blank_is_refused()
    {
        Assert.Throws<ArgumentException>(() => new ServiceCollection().AddPipelineTool<OwnKindTool>(" "));
    }

    private sealed class OwnKindTool : ITool
    {
        public string Kind => "own";

        public ValueTask<ToolResult> InvokeAsync(Command command, CancellationToken cancellationToken) => new(ToolResult.Success());
    }

    private sealed class CountingHandler : DelegatingHandler
    {
        private int _requests;

        public int Requests => _requests;

        protected override Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken cancellationToken)
        {
            Interlocked.Increment(ref _requests);
            return base.SendAsync(request, cancellationToken);
        }
    }
}
