using Pipeline.Testing.Processes;

namespace Pipeline.Cli.Tests;

/// <summary>Text from input or from a peer never drives the terminal: the real binary, piped and on a pseudo-terminal.</summary>
[Collection(RealProcesses.Name)]
public sealed class TerminalSafetyTests : IDisposable
{
    // Sets the window title, rings the bell, clears the screen, homes the cursor.
    private const string Attack = "\u001b]0;pwned\u0007\u001b[2J\u001b[H";
    private const string Forged = "  result         all commands succeeded";

    private readonly string _directory = Directory.CreateTempSubdirectory("pipeline-terminal-").FullName;

    public void Dispose() => Directory.Delete(_directory, recursive: true);

    /// <summary>A commands file (itself with an escape sequence in its name) with the attack in every text field.</summary>
    private string HostileCommands()
    {
        var path = Path.Combine(_directory, $"evil{Attack}.jsonl");
        var rows = new object[]
        {
            new { command_id = "id" + Attack + "\n" + Forged + "\r", execution_id = 1, step = "s" + Attack, tool_kind = "teleport" + Attack, input = new { } },
            new { command_id = "h" + Attack, execution_id = 1, step = "s", tool_kind = "http", input = new { url = "http://127.0.0.1:1/" + Attack } },
            new { command_id = "d" + Attack, execution_id = 1, step = "s", tool_kind = "delay", input = new { ms = "x" + Attack } },
            new { command_id = "e" + Attack, execution_id = 1, step = "s" + Attack, tool_kind = "echo", input = new { text = Attack }, render_context = new { k = Attack } },
        };
        var lines = rows.Select(r => JsonSerializer.Serialize(r, new JsonSerializerOptions { Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping }))
            .Append("{\"command_id\": \"" + Attack + "\r")      // raw control characters: malformed, quoted by the parser's message
            .Append(Attack);
        File.WriteAllLines(path, lines);
        return path;
    }

    [Fact]
    public async Task Piped_output_has_no_control_characters_from_the_data_and_no_forged_line()
    {
        var events = Path.Combine(_directory, "events.jsonl");
        using var process = PipelineProcess.Start(["run", HostileCommands(), "--events", events]);
        var exit = await process.WaitForExitAsync(TimeSpan.FromSeconds(60));

        Assert.Equal(1, exit);
        var output = process.Stdout + process.Stderr;
        Assert.DoesNotContain('\u001b', output);
        Assert.DoesNotContain('\u0007', output);
        Assert.DoesNotContain('\r', output);
        var results = process.Stdout.Split('\n').Where(l => l.StartsWith("  result", StringComparison.Ordinal)).ToList();
        Assert.Equal(["  result         some commands failed"], results);
        // Shown, visibly escaped: the reader sees what the data held.
        Assert.Contains(@"id\x1b]0;pwned\x07\x1b[2J\x1b[H\n  result         all commands succeeded\r: unknown tool_kind", process.Stdout, StringComparison.Ordinal);
        Assert.Contains(@"pipeline run " + _directory + @"/evil\x1b]0;pwned\x07\x1b[2J\x1b[H.jsonl", process.Stdout, StringComparison.Ordinal);

        // The events stay exact JSON: the id round-trips byte for byte.
        var ids = (await File.ReadAllLinesAsync(events)).Select(l => JsonDocument.Parse(l).RootElement)
            .Where(e => e.TryGetProperty("command_id", out var id) && id.ValueKind == JsonValueKind.String)
            .Select(e => e.GetProperty("command_id").GetString()).ToHashSet();
        Assert.Contains("id" + Attack + "\n" + Forged + "\r", ids);
    }

    [Fact]
    public async Task On_a_terminal_the_data_cannot_drive_it_and_the_cursor_comes_back()
    {
        var (exit, output) = await RunOnTerminal(["run", HostileCommands()], signalAfter: null);

        Assert.Equal(1, exit);
        Assert.DoesNotContain("\u001b]0;pwned", output, StringComparison.Ordinal);
        Assert.DoesNotContain("\u001b[2J", output, StringComparison.Ordinal);
        Assert.DoesNotContain('\u0007', output);
        Assert.DoesNotContain(output.Split('\n'), l => l.TrimEnd('\r') == Forged);
        CursorIsShownAtTheEnd(output);
    }

    [Fact]
    public async Task Ctrl_c_on_a_terminal_ends_with_the_summary_and_the_cursor_shown()
    {
        var commands = Path.Combine(_directory, "slow.jsonl");
        File.WriteAllLines(commands, Enumerable.Range(1, 64).Select(i =>
            $$$"""{"command_id":"c{{{i}}}","execution_id":1,"step":"s","tool_kind":"delay","input":{"ms":30000}}"""));

        var (exit, output) = await RunOnTerminal(["run", commands, "--shutdown-timeout-ms", "500"], signalAfter: TimeSpan.FromSeconds(2));

        Assert.Equal(130, exit);
        Assert.Contains("result         stopped by SIGINT", output, StringComparison.Ordinal);
        CursorIsShownAtTheEnd(output);
    }

    private static void CursorIsShownAtTheEnd(string output)
    {
        var hidden = output.LastIndexOf("\u001b[?25l", StringComparison.Ordinal);
        var shown = output.LastIndexOf("\u001b[?25h", StringComparison.Ordinal);
        Assert.True(hidden >= 0, "the live table hides the cursor while it draws");
        Assert.True(shown > hidden, "the cursor is shown again after the live table");
    }

    /// <summary>Runs the binary on a pseudo-terminal (util-linux <c>script</c>), optionally sending SIGINT to it.</summary>
    private async Task<(int Exit, string Output)> RunOnTerminal(string[] args, TimeSpan? signalAfter)
    {
        var binary = Path.Combine(AppContext.BaseDirectory, "pipeline");
        // Through env --default-signal where it can (ChildProcesses.WithDefaultSignals says why); env execs the binary.
        var command = (ChildProcesses.DefaultSignalsPrefix.Value ?? []).Append(binary).Concat(args);
        var quoted = string.Join(' ', command.Select(a => "'" + a.Replace("'", "'\\''", StringComparison.Ordinal) + "'"));
        var transcript = Path.Combine(_directory, "terminal.txt");
        var startInfo = new ProcessStartInfo("script", ["-qefc", quoted, transcript])
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            RedirectStandardInput = true,
            UseShellExecute = false,
        };
        startInfo.Environment["TERM"] = "xterm-256color";
        startInfo.Environment.Remove("NO_COLOR");
        using var script = Process.Start(startInfo)!;
        var drain = Task.WhenAll(script.StandardOutput.ReadToEndAsync(), script.StandardError.ReadToEndAsync());
        if (signalAfter is { } delay)
        {
            await Task.Delay(delay);
            // Found by its arguments: other tests run the same binary at the same time.
            using var pgrep = Process.Start(new ProcessStartInfo("pgrep", ["-f", "-n", $"^{binary} run {args[1]}"]) { RedirectStandardOutput = true })!;
            var pid = int.Parse((await pgrep.StandardOutput.ReadToEndAsync()).Trim(), System.Globalization.CultureInfo.InvariantCulture);
            using var kill = Process.Start("kill", ["-INT", pid.ToString(System.Globalization.CultureInfo.InvariantCulture)])!;
            await kill.WaitForExitAsync();
        }

        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        await script.WaitForExitAsync(timeout.Token);
        await drain;
        // The transcript's first and last lines are script's own, quoting the command line.
        var lines = (await File.ReadAllTextAsync(transcript)).Split('\n');
        return (script.ExitCode, string.Join('\n', lines.Where(l => !l.StartsWith("Script ", StringComparison.Ordinal))));
    }
}
