using System.Text.Json.Serialization;
using System.Text.Json.Serialization.Metadata;

namespace Pipeline.Tests.Dispatch;

/// <summary>A typed tool gets its command's input bound by System.Text.Json; what does not bind fails the command for good, naming the tool and the member.</summary>
public sealed class PipelineToolTests
{
    private static async Task<(UpperInput? Input, ToolContext? Context, ToolResult Result)> InvokeAsync(PipelineTool<UpperInput> tool, string inputJson, string kind = "upper", int attempts = 0)
    {
        var recorder = tool as UpperTool;
        var result = await ((ITool)tool).InvokeAsync(TestCommands.Make("c-1", kind, inputJson, attempts, executionId: 77), default);
        return (recorder?.Input, recorder?.Context, result);
    }

    private static async Task<string> BadInputAsync(string inputJson, ITool? tool = null)
    {
        tool ??= new UpperTool();
        var ex = await Assert.ThrowsAsync<ToolInputException>(() => tool.InvokeAsync(TestCommands.Make("c-1", "upper", inputJson), default).AsTask());
        Assert.Null((tool as UpperTool)?.Input); // the tool's own code never ran
        return ex.Message;
    }

    [Fact]
    public async Task Members_bind_in_snake_case_and_the_context_describes_the_command()
    {
        var (input, context, result) = await InvokeAsync(new UpperTool(), """{"text": "ab", "max_length": 1}""", attempts: 2);

        Assert.Equal(new UpperInput("ab", 1), input);
        Assert.True(result.IsSuccess);
        Assert.Equal("""{"upper":"A"}""", result.Value.GetRawText());
        Assert.Equal("c-1", context!.CommandId);
        Assert.Equal(77, context.ExecutionId);
        Assert.Equal("fetch", context.Step);
        Assert.Equal("upper", context.ToolKind);
        Assert.Equal(3, context.Attempt); // two attempts before this one
    }

    [Fact]
    public async Task A_member_of_the_wrong_JSON_type_is_bad_input_naming_the_tool_and_the_member()
    {
        var message = await BadInputAsync("""{"text": 42}""");

        Assert.StartsWith("upper: input.text: ", message, StringComparison.Ordinal);
        Assert.Contains("'Number'", message, StringComparison.Ordinal);
        Assert.DoesNotContain("LineNumber", message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_missing_required_member_is_bad_input_naming_it()
    {
        var message = await BadInputAsync("""{"max_length": 3}""");

        Assert.StartsWith("upper: input: ", message, StringComparison.Ordinal);
        Assert.Contains("missing required properties including: 'text'", message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Null_for_a_non_nullable_member_is_bad_input_naming_it()
    {
        var message = await BadInputAsync("""{"text": null}""");

        Assert.StartsWith("upper: input.text: ", message, StringComparison.Ordinal);
        Assert.Contains("doesn't allow null values", message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_number_out_of_range_is_bad_input_naming_the_member()
    {
        var message = await BadInputAsync("""{"text": "a", "max_length": 1e40}""");

        Assert.StartsWith("upper: input.max_length: ", message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_number_in_a_string_is_bad_input()
    {
        var message = await BadInputAsync("""{"text": "a", "max_length": "3"}""");

        Assert.StartsWith("upper: input.max_length: ", message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_repeated_member_is_bad_input_rather_than_the_last_one_winning()
    {
        var message = await BadInputAsync("""{"text": "a", "text": "b"}""");

        Assert.StartsWith("upper: input.text: ", message, StringComparison.Ordinal);
        Assert.Contains("Duplicate", message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("null", "upper: input is required, not null.")]
    [InlineData("[1]", "upper: input: ")]
    [InlineData("\"text\"", "upper: input: ")]
    public async Task An_input_that_is_not_an_object_is_bad_input(string inputJson, string expectedStart)
    {
        var message = await BadInputAsync(inputJson);

        Assert.StartsWith(expectedStart, message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Unknown_members_are_ignored_unless_the_input_type_disallows_them()
    {
        var (input, _, _) = await InvokeAsync(new UpperTool(), """{"text": "ab", "colour": "red"}""");
        Assert.Equal(new UpperInput("ab"), input);

        var message = await BadInputAsync("""{"text": "ab", "colour": "red"}""", new StrictUpperTool());
        Assert.Contains("'colour'", message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_source_generated_type_info_the_tool_supplies_is_the_one_used()
    {
        // The context binds camelCase: the reflection fallback (snake_case) would leave MaxLength null.
        var (input, _, _) = await InvokeAsync(new GeneratedUpperTool(), """{"text": "ab", "maxLength": 1}""");
        Assert.Equal(new UpperInput("ab", 1), input);

        var message = await BadInputAsync("""{"text": 42}""", new GeneratedUpperTool());
        Assert.StartsWith("upper: input.text: ", message, StringComparison.Ordinal);
    }

    [Fact]
    public void The_kind_is_the_class_name_without_Tool_in_lower_case_unless_overridden()
    {
        Assert.Equal("upper", new UpperTool().Kind);
        Assert.Equal("shout", new Shout().Kind);
        Assert.Equal("upper-strict", new StrictUpperTool().Kind);
    }

    [Fact]
    public async Task Bad_input_in_the_pipeline_is_a_command_failed_that_is_not_retried()
    {
        var source = new RecordingSource([ClaimOutcome.Claimed(TestCommands.Make("bad", "upper", """{"text": 42}"""))]);
        var sink = new CollectingSink();
        var tool = new UpperTool();
        var options = PipelineHarness.FastOptions(AckMode.AckAfterDispatch) with { MaxAttempts = 5, ToolRetries = 3 };
        await new CommandPipeline<long>(source, PipelineHarness.Tools(tool), sink, options).RunAsync(CancellationToken.None).WaitAsync(TimeSpan.FromSeconds(30));

        var failed = sink.For("bad").Single(e => e.EventType == EventTypes.CommandFailed);
        Assert.StartsWith("upper: input.text: ", failed.Error, StringComparison.Ordinal);
        Assert.EndsWith("(not retryable; giving up)", failed.Error, StringComparison.Ordinal);
        Assert.Equal(SettleKind.Terminated, source.Settled[0]); // not nacked for another attempt
        Assert.Null(tool.Input);
    }

    public sealed record UpperInput(string Text, int? MaxLength = null);

    [JsonUnmappedMemberHandling(JsonUnmappedMemberHandling.Disallow)]
    public sealed record StrictInput(string Text);

    private class UpperTool : PipelineTool<UpperInput>
    {
        public UpperInput? Input { get; private set; }

        public ToolContext? Context { get; private set; }

        public override ValueTask<ToolResult> InvokeAsync(UpperInput input, ToolContext context, CancellationToken cancellationToken)
        {
            (Input, Context) = (input, context);
            var upper = input.Text.ToUpperInvariant();
            return new(ToolResult.Success(JsonSerializer.SerializeToElement(new { upper = input.MaxLength is { } n ? upper[..n] : upper })));
        }
    }

    private sealed class GeneratedUpperTool : UpperTool
    {
        protected override JsonTypeInfo<UpperInput> InputTypeInfo => CamelCaseInputContext.Default.UpperInput;
    }

    private sealed class Shout : UpperTool;

    private sealed class StrictUpperTool : PipelineTool<StrictInput>
    {
        public override string Kind => "upper-strict";

        public override ValueTask<ToolResult> InvokeAsync(StrictInput input, ToolContext context, CancellationToken cancellationToken) =>
            new(ToolResult.Success());
    }
}

[JsonSourceGenerationOptions(PropertyNamingPolicy = JsonKnownNamingPolicy.CamelCase, RespectNullableAnnotations = true, RespectRequiredConstructorParameters = true, AllowDuplicateProperties = false)]
[JsonSerializable(typeof(PipelineToolTests.UpperInput))]
internal sealed partial class CamelCaseInputContext : JsonSerializerContext;
