namespace Pipeline.Cli.Tests.Support;

/// <summary>The <c>pipeline</c> command line run in this process (not a terminal), its output captured, within a bound.</summary>
internal static class InProcessCli
{
    /// <summary>Runs <paramref name="args"/>; standard input comes from <paramref name="stdin"/> when given; fails after <paramref name="bound"/> (default 60 s).</summary>
    public static async Task<(int Exit, string Out, string Err)> RunAsync(string[] args, Func<Stream>? stdin = null, StopSignals? stop = null, TimeSpan? bound = null)
    {
        using var stdout = new StringWriter();
        using var stderr = new StringWriter();
        var exit = await PipelineCli.InvokeAsync(args, stdout, stderr, interactive: false, stop, stdin: stdin).WaitAsync(bound ?? TimeSpan.FromSeconds(60));
        return (exit, stdout.ToString(), stderr.ToString());
    }
}
