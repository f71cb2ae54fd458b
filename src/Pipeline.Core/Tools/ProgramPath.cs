namespace Pipeline.Tools;

/// <summary>
/// Finds a program the way <see cref="System.Diagnostics.Process"/> does on Unix, so a program
/// started through setsid(1) is the same one .NET would have started: a rooted path as given;
/// else the file next to this executable, then in the current directory, then the first
/// executable one on PATH (this process's PATH, not the command's <c>env</c>).
/// </summary>
internal static class ProgramPath
{
    /// <summary>The program's path, or null when there is none to run.</summary>
    public static string? Resolve(string program)
    {
        if (program.Length == 0 || program.Contains('\0', StringComparison.Ordinal))
        {
            return null;
        }

        if (Path.IsPathRooted(program))
        {
            return program;
        }

        if (Path.GetDirectoryName(Environment.ProcessPath) is { } exeDirectory)
        {
            var besideExe = Path.Combine(exeDirectory, program);
            if (File.Exists(besideExe))
            {
                return besideExe;
            }
        }

        var inCurrent = Path.Combine(Directory.GetCurrentDirectory(), program);
        if (File.Exists(inCurrent))
        {
            return inCurrent;
        }

        foreach (var directory in (Environment.GetEnvironmentVariable("PATH") ?? string.Empty).Split(':', StringSplitOptions.RemoveEmptyEntries))
        {
            var candidate = Path.Combine(directory, program);
            if (IsExecutable(candidate))
            {
                return candidate;
            }
        }

        return null;
    }

    // .NET also checks the x bit against the effective user and group; any x bit is near enough,
    // since exec then fails with a clear error that the shell tool reports as "cannot start".
    private static bool IsExecutable(string path) =>
        File.Exists(path)
        && (OperatingSystem.IsWindows() || (File.GetUnixFileMode(path) & (UnixFileMode.UserExecute | UnixFileMode.GroupExecute | UnixFileMode.OtherExecute)) != 0);
}
