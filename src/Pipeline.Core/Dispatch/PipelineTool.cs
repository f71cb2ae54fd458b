using System.Text.Json;
using System.Text.Json.Serialization;
using System.Text.Json.Serialization.Metadata;
using Pipeline.Commands;
using Pipeline.Tools;

namespace Pipeline.Dispatch;

/// <summary>
/// A tool whose command <c>input</c> arrives bound to <typeparamref name="TInput"/> by
/// System.Text.Json. Register it with
/// <see cref="PipelineToolServiceCollectionExtensions.AddPipelineTool{TTool}(Microsoft.Extensions.DependencyInjection.IServiceCollection, string, Microsoft.Extensions.DependencyInjection.ServiceLifetime)"/>
/// (a new instance per command, from the command's own DI scope) or put an instance in a
/// <see cref="ToolRegistry"/>.
/// </summary>
/// <remarks>
/// <para>
/// An input that does not bind (a wrong JSON type, a missing <c>required</c> member or constructor
/// parameter, <c>null</c> for a non-nullable member, a repeated member, a top-level <c>null</c>) is
/// a <see cref="ToolInputException"/>: the command fails for good (<c>command.failed</c>, not
/// retryable) with an error naming the tool and the member, as the built-in tools' bad input does.
/// </para>
/// <para>
/// Binding is source-generated when <see cref="InputTypeInfo"/> returns the type's
/// <see cref="JsonTypeInfo{T}"/> from a <see cref="JsonSerializerContext"/> (needed under trimming
/// and native AOT; give the context
/// <c>[JsonSourceGenerationOptions(PropertyNamingPolicy = JsonKnownNamingPolicy.SnakeCaseLower, RespectNullableAnnotations = true, RespectRequiredConstructorParameters = true, AllowDuplicateProperties = false)]</c>
/// to bind as the fallback does). Without one it is reflection-based with strict options:
/// members in snake_case as the wire format writes them (<c>MaxLength</c> is <c>max_length</c>;
/// <c>[JsonPropertyName]</c> overrides it), names matched case-sensitively, numbers only from JSON
/// numbers, nullable annotations and required constructor parameters respected, repeated members
/// refused. Unknown members are ignored, as the command's own unknown fields are; put
/// <c>[JsonUnmappedMemberHandling(JsonUnmappedMemberHandling.Disallow)]</c> on
/// <typeparamref name="TInput"/> to refuse them.
/// </para>
/// </remarks>
/// <typeparam name="TInput">The input's type: a record or class (a struct works too).</typeparam>
public abstract class PipelineTool<TInput> : ITool
{
    /// <summary>
    /// The <c>tool_kind</c> this tool serves when it is put in a <see cref="ToolRegistry"/> directly:
    /// by default its class name without a <c>Tool</c> suffix, in lower case (<c>UpperTool</c> is
    /// <c>upper</c>). A DI registration's kind (<c>AddPipelineTool&lt;UpperTool&gt;("upper")</c>) wins over it.
    /// </summary>
    public virtual string Kind => ConventionalKind(GetType());

    /// <summary>
    /// The source-generated metadata to bind <typeparamref name="TInput"/> with (e.g.
    /// <c>MyJsonContext.Default.UpperInput</c>), or null (the default) for reflection-based
    /// binding with the strict options described on the class.
    /// </summary>
    protected virtual JsonTypeInfo<TInput>? InputTypeInfo => null;

    /// <summary>
    /// Runs the command with its bound <paramref name="input"/>. Report failure through
    /// <see cref="ToolResult.Failure"/>; a throw is also a failure (transient for
    /// <see cref="TransientToolException"/>, <see cref="HttpRequestException"/> and
    /// <see cref="TimeoutException"/>; not retryable for <see cref="ToolInputException"/>, e.g.
    /// a check of your own on the input). Honour <paramref name="cancellationToken"/>: it fires on
    /// timeout and at the shutdown deadline.
    /// </summary>
    public abstract ValueTask<ToolResult> InvokeAsync(TInput input, ToolContext context, CancellationToken cancellationToken);

    /// <summary>Binds the command's input, then runs <see cref="InvokeAsync(TInput, ToolContext, CancellationToken)"/>.</summary>
    ValueTask<ToolResult> ITool.InvokeAsync(Command command, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(command);
        var input = ToolInput.Bind(command.ToolKind, command.Input, InputTypeInfo ?? ReflectionInput.TypeInfo);
        return InvokeAsync(input, new ToolContext(command), cancellationToken);
    }

    private static string ConventionalKind(Type type)
    {
        var name = type.Name;
        if (name.EndsWith("Tool", StringComparison.Ordinal) && name.Length > "Tool".Length)
        {
            name = name[..^"Tool".Length];
        }

        return name.ToLowerInvariant();
    }

    /// <summary>The reflection-based metadata, built once per input type.</summary>
    private static class ReflectionInput
    {
        public static readonly JsonTypeInfo<TInput> TypeInfo = (JsonTypeInfo<TInput>)ToolInput.StrictOptions.GetTypeInfo(typeof(TInput));
    }
}
