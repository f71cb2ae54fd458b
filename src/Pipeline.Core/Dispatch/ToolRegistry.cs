using System.Collections.Frozen;
using Pipeline.Tools;

namespace Pipeline.Dispatch;

/// <summary>Tools by <c>tool_kind</c> (ordinal, case-sensitive). Immutable once built.</summary>
public sealed class ToolRegistry
{
    private readonly FrozenDictionary<string, ITool> _tools;

    /// <summary>Builds a registry of <paramref name="tools"/>; two tools of one kind is an error.</summary>
    public ToolRegistry(IEnumerable<ITool> tools)
    {
        ArgumentNullException.ThrowIfNull(tools);
        var byKind = new Dictionary<string, ITool>(StringComparer.Ordinal);
        foreach (var tool in tools)
        {
            if (!byKind.TryAdd(tool.Kind, tool))
            {
                throw new ArgumentException($"Two tools are registered for tool_kind '{tool.Kind}'.", nameof(tools));
            }
        }

        _tools = byKind.ToFrozenDictionary(StringComparer.Ordinal);
        KnownKinds = string.Join(", ", _tools.Keys.Order(StringComparer.Ordinal));
    }

    /// <summary>The registered kinds, comma-separated, for error messages.</summary>
    public string KnownKinds { get; }

    /// <summary>Finds the tool for <paramref name="kind"/>.</summary>
    public bool TryGet(string kind, [System.Diagnostics.CodeAnalysis.MaybeNullWhen(false)] out ITool tool) =>
        _tools.TryGetValue(kind, out tool);

    /// <summary>
    /// The built-in tools: <c>noop</c>, <c>delay</c>, <c>echo</c>, <c>http</c>, and <c>shell</c>
    /// only when <see cref="BuiltInToolOptions.EnableShell"/> is set.
    /// </summary>
    public static ToolRegistry CreateBuiltIn(BuiltInToolOptions? options = null, IEnumerable<ITool>? extra = null)
    {
        options ??= new BuiltInToolOptions();
        var tools = new List<ITool>
        {
            new NoopTool(),
            new DelayTool(options.TimeProvider),
            new EchoTool(options.MaxOutputBytes),
            new HttpTool(options.HttpClient ?? HttpTool.CreateDefaultClient(), options.MaxOutputBytes),
        };
        if (options.EnableShell)
        {
            tools.Add(new ShellTool(options.MaxOutputBytes));
        }

        if (extra is not null)
        {
            tools.AddRange(extra);
        }

        return new ToolRegistry(tools);
    }
}

/// <summary>Options for the built-in tools.</summary>
public sealed record BuiltInToolOptions
{
    /// <summary>The default <see cref="MaxOutputBytes"/>: 64 KiB (65,536 bytes).</summary>
    public const int DefaultMaxOutputBytes = 64 * 1024;

    /// <summary>The largest <see cref="MaxOutputBytes"/> a run may set: 16 MiB (16,777,216 bytes).</summary>
    public const int HardMaxOutputBytes = 16 * 1024 * 1024;

    private readonly int _maxOutputBytes = DefaultMaxOutputBytes;

    /// <summary>
    /// The most output a tool keeps per command, in bytes: each of <c>shell</c>'s stdout and
    /// stderr, <c>http</c>'s response body, <c>echo</c>'s result. Past it <c>shell</c> reads on
    /// and discards (the process still runs to its end), <c>http</c> stops reading, and the result
    /// says <c>"truncated": true</c>; <c>echo</c> returns <c>{"truncated": true, "input_bytes": N}</c>
    /// instead of its input. A command may lower it with <c>input.max_output_bytes</c>, never raise
    /// it. Default <see cref="DefaultMaxOutputBytes"/> (64 KiB); from 1 to
    /// <see cref="HardMaxOutputBytes"/> (16 MiB).
    /// </summary>
    /// <exception cref="ArgumentOutOfRangeException">The value is below 1 or above <see cref="HardMaxOutputBytes"/>.</exception>
    public int MaxOutputBytes
    {
        get => _maxOutputBytes;
        init => _maxOutputBytes = ValidateMaxOutputBytes(value, nameof(MaxOutputBytes));
    }

    /// <summary>Registers the <c>shell</c> tool, which runs processes on this machine. Default: false.</summary>
    public bool EnableShell { get; init; }

    /// <summary>The client the <c>http</c> tool uses; a pooled default client when null.</summary>
    public HttpClient? HttpClient { get; init; }

    /// <summary>The clock the <c>delay</c> tool waits on. Default: <see cref="TimeProvider.System"/>.</summary>
    public TimeProvider TimeProvider { get; init; } = TimeProvider.System;

    internal static int ValidateMaxOutputBytes(int value, string name) =>
        value is >= 1 and <= HardMaxOutputBytes
            ? value
            : throw new ArgumentOutOfRangeException(name, value, $"{name} must be from 1 to {HardMaxOutputBytes} bytes (16 MiB), not {value}.");
}
