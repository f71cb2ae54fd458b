namespace Pipeline.Tests.Dispatch;

/// <summary>What the probe tools saw: each run, each scoped service made and disposed. A singleton.</summary>
internal sealed class Journal
{
    private int _nextId;
    private int _waiting;

    /// <summary>Released by a test to let the runs waiting on it (mode <c>gate</c>) finish.</summary>
    public TaskCompletionSource Gate { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

    public ConcurrentQueue<ProbeRun> Runs { get; } = new();

    /// <summary>Runs waiting on <see cref="Gate"/> now.</summary>
    public int Waiting => _waiting;

    public ConcurrentQueue<int> Created { get; } = new();

    public ConcurrentQueue<int> Disposed { get; } = new();

    /// <summary>Makes <see cref="Letters.DisposeAsync"/> throw.</summary>
    public bool FailDispose { get; set; }

    public int NextId() => Interlocked.Increment(ref _nextId);

    public void Enter() => Interlocked.Increment(ref _waiting);
}

/// <summary>One run of a probe tool: its command, the scoped service it got (and whether that was disposed while it ran), the tool instance.</summary>
internal sealed record ProbeRun(string CommandId, int LettersId, bool LettersDisposedDuringRun, ProbeTool Tool);

/// <summary>A scoped service, as a DbContext would be: made per scope, disposed (asynchronously) with it.</summary>
internal sealed class Letters : IAsyncDisposable
{
    private readonly Journal _journal;

    public Letters(Journal journal)
    {
        _journal = journal;
        Id = journal.NextId();
        journal.Created.Enqueue(Id);
    }

    public int Id { get; }

    public bool IsDisposed { get; private set; }

    public async ValueTask DisposeAsync()
    {
        await Task.Yield(); // disposed asynchronously, as a DbContext closing its connection
        IsDisposed = true;
        _journal.Disposed.Enqueue(Id);
        if (_journal.FailDispose)
        {
            throw new InvalidOperationException("injected dispose failure");
        }
    }
}

/// <summary><c>{"mode": "ok" | "fail" | "throw" | "wait" | "gate"}</c>: what the run does.</summary>
internal sealed record ProbeInput(string Mode);

/// <summary>A typed tool with a scoped dependency (<see cref="Letters"/>) and a singleton one (<see cref="Journal"/>).</summary>
internal sealed class ProbeTool(Letters letters, Journal journal) : PipelineTool<ProbeInput>
{
    public override async ValueTask<ToolResult> InvokeAsync(ProbeInput input, ToolContext context, CancellationToken cancellationToken)
    {
        switch (input.Mode)
        {
            case "fail":
                return ToolResult.Failure("probe: failed as asked");
            case "throw":
                throw new InvalidOperationException("probe: threw as asked");
            case "wait":
                await Task.Delay(Timeout.InfiniteTimeSpan, cancellationToken);
                break;
            case "gate":
                journal.Enter();
                await journal.Gate.Task.WaitAsync(cancellationToken);
                break;
        }

        journal.Runs.Enqueue(new(context.CommandId, letters.Id, letters.IsDisposed, this));
        return ToolResult.Success();
    }
}
