using Microsoft.Extensions.Configuration;
using Pipeline.Commands;

namespace Pipeline.Modules;

/// <summary>
/// What a module offers <c>pipeline enqueue</c>: its flags (the selector, where commands go, how
/// to reach it) and how to open an <see cref="ICommandEnqueuer"/> from the settings they make.
/// The command line reads the file, shows progress and counts; the module only puts commands
/// where its source takes them from.
/// </summary>
public sealed record ModuleEnqueue
{
    /// <summary>The flags, each a key of the module's section (<c>Pipeline:Nats:Enqueue:Stream</c>).</summary>
    public required ModuleCommandLine CommandLine { get; init; }

    /// <summary>Where commands go, as the command's help says it (<c>NATS JetStream</c>).</summary>
    public required string Summary { get; init; }

    /// <summary>
    /// Opens an enqueuer from the <c>Pipeline</c> section (the flags' keys); what it cannot take is
    /// reported to the callback, one command at a time. Nothing is connected until <see cref="ICommandEnqueuer.StartAsync"/>.
    /// </summary>
    public required Func<IConfiguration, Action<EnqueueFailure>, ICommandEnqueuer> Open { get; init; }
}

/// <summary>
/// Puts commands where a module's source takes them from (a stream, a store's queue), a bounded
/// window of them awaiting confirmation at a time, each deduplicated by its <c>command_id</c>
/// where the backend can. Every text it gives is safe to print: no password, token or URL user info.
/// </summary>
public interface ICommandEnqueuer : IAsyncDisposable
{
    /// <summary>Where commands go, as the summary says it (<c>stream pipeline_commands</c>).</summary>
    string Destination { get; }

    /// <summary>What a duplicate is here, as the summary says it (<c>already in the stream (same command_id within its duplicate window): not stored again</c>).</summary>
    string DuplicateMeaning { get; }

    /// <summary>What a failure is here, as the summary says it (<c>not acknowledged by the stream</c>).</summary>
    string FailureMeaning { get; }

    /// <summary>What the progress line calls the stored commands (<c>published</c>, <c>enqueued</c>).</summary>
    string StoredAs { get; }

    /// <summary>What the progress line calls the commands sent and not yet confirmed (<c>awaiting ack</c>, <c>being written</c>).</summary>
    string UnconfirmedAs { get; }

    /// <summary>Commands stored.</summary>
    long Enqueued { get; }

    /// <summary>Commands the backend already had (same <c>command_id</c>): not stored again.</summary>
    long Duplicates { get; }

    /// <summary>Commands the backend did not take.</summary>
    long Failed { get; }

    /// <summary>Set when enqueueing stopped for good (every later command would fail too): the whole message, what was lost and what to do.</summary>
    string? FatalError { get; }

    /// <summary>Connects and makes sure the destination exists (creating it when allowed), within <paramref name="bound"/>.</summary>
    /// <exception cref="EnqueueException">It cannot: the message says why (no answer within the bound, among others).</exception>
    Task StartAsync(TimeSpan bound, CancellationToken cancellationToken);

    /// <summary>Sends one command; returns once it is sent, its confirmation awaited in the window (a full window waits here).</summary>
    ValueTask EnqueueAsync(Command command, long tag, CancellationToken cancellationToken);

    /// <summary>Awaits every confirmation still outstanding.</summary>
    Task FlushAsync();
}

/// <summary>One command the backend did not take.</summary>
/// <param name="Tag">What the caller passed with it (its number in the input).</param>
/// <param name="CommandId">The command's id.</param>
/// <param name="Reason">Why, without secrets.</param>
public readonly record struct EnqueueFailure(long Tag, string CommandId, string Reason);

/// <summary>Enqueueing cannot start; the message says why, without secrets.</summary>
public sealed class EnqueueException : Exception
{
    /// <summary>Creates the exception.</summary>
    public EnqueueException()
    {
    }

    /// <summary>Creates the exception with a message.</summary>
    public EnqueueException(string message)
        : base(message)
    {
    }

    /// <summary>Creates the exception with a message and a cause.</summary>
    public EnqueueException(string message, Exception innerException)
        : base(message, innerException)
    {
    }

    /// <summary>A setting that cannot work (a subject the stream does not store), rather than a backend that cannot be reached.</summary>
    public bool SettingError { get; init; }
}
