using System.Text.Json;
using Pipeline.Dispatch;
using Pipeline.Hosting;

var builder = Host.CreateApplicationBuilder(args);
builder.AddPipelineWorker();                           // the Pipeline section; the built-in tools too
builder.Services.AddScoped<Letters>();                 // scoped, as a DbContext: one per command
builder.Services.AddPipelineTool<UpperTool>("upper");  // {"tool_kind": "upper", "input": {"text": "hi"}}
await builder.Build().RunAsync();

public sealed record UpperInput(string Text);          // bound by System.Text.Json; bad input fails for good

public sealed class UpperTool(Letters letters) : PipelineTool<UpperInput>
{
    public override ValueTask<ToolResult> InvokeAsync(UpperInput input, ToolContext context, CancellationToken cancellationToken) =>
        new(ToolResult.Success(JsonSerializer.SerializeToElement(new { upper = letters.Upper(input.Text) })));
}

public class Letters { public virtual string Upper(string text) => text.ToUpperInvariant(); }
