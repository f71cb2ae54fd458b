using System.Runtime.CompilerServices;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Pipeline.Commands;

namespace Pipeline.Dispatch;

/// <summary>
/// A tool registered with a scoped (or transient) lifetime, as the registry holds it: each run
/// opens a new <see cref="AsyncServiceScope"/>, resolves the tool from it (so the tool can take
/// scoped services, a <c>DbContext</c> say), runs it, and disposes the scope when the run ends,
/// whether it succeeded, failed, threw, timed out or was cancelled. The engine sees an ordinary
/// <see cref="ITool"/>: the Dispatch block and the registry lookup are the same for tools that
/// need no scope, which the registry holds themselves.
/// </summary>
internal sealed class ScopedTool(PipelineToolRegistration registration, IServiceScopeFactory scopes, ILogger logger) : ITool
{
    public string Kind => registration.Kind;

    // Pooled: a tool that goes asynchronous suspends here too, and a fresh box per command would be garbage on the hot path.
    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder<>))]
    public async ValueTask<ToolResult> InvokeAsync(Command command, CancellationToken cancellationToken)
    {
        var scope = scopes.CreateAsyncScope();
        try
        {
            var tool = scope.ServiceProvider.GetRequiredKeyedService<ITool>(registration.ServiceKey);
            return await tool.InvokeAsync(command, cancellationToken).ConfigureAwait(false);
        }
        finally
        {
            await DisposeAsync(scope, command).ConfigureAwait(false);
        }
    }

    /// <summary>
    /// Disposes the command's scope. A service whose disposal throws does not change what the
    /// tool's run decided (its work is done, or its error stands): it is logged, not reported as
    /// the command's failure, which would run the command again.
    /// </summary>
    private async ValueTask DisposeAsync(AsyncServiceScope scope, Command command)
    {
        try
        {
            await scope.DisposeAsync().ConfigureAwait(false);
        }
        catch (Exception ex)
        {
            Log.ScopeDisposeFailed(logger, ex, registration.Kind, command.CommandId);
        }
    }
}

/// <summary>Tools in DI: what is logged.</summary>
internal static partial class Log
{
    [LoggerMessage(101, LogLevel.Error, "Disposing the DI scope of tool '{Kind}' for {CommandId} failed; the tool's result stands.")]
    public static partial void ScopeDisposeFailed(ILogger logger, Exception exception, string kind, string commandId);
}
