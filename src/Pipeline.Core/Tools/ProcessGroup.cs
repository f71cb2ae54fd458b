using System.Runtime.InteropServices;

namespace Pipeline.Tools;

/// <summary>
/// Runs a program as the leader of a new session and process group, so the whole group (a
/// double-forked child included) can be killed at once. On Linux the program is started through
/// setsid(1): a child .NET spawns is never a group leader, so setsid calls setsid(2) and execs
/// in place, and the process id is also the session and group id.
/// </summary>
internal static partial class ProcessGroup
{
    private const int SigKill = 9;

    /// <summary>setsid(1) (util-linux) where present; null elsewhere (Windows, macOS, a missing binary).</summary>
    public static string? SetsidPath { get; } = FindSetsid();

    /// <summary>
    /// Sends SIGKILL to every process in group <paramref name="processGroupId"/>. False when the
    /// group has no process left (or is not there yet: setsid has not run).
    /// </summary>
    /// <remarks>
    /// While any process of the group lives, its id cannot be given to a new process, so this
    /// reaches only the command's processes. Once the group is empty and its leader reaped the id
    /// is free again; a new group could take it only after the kernel's process ids wrapped round
    /// in the moment between that reap and this call.
    /// </remarks>
    public static bool Kill(int processGroupId) =>

        // Never -1 or 0: kill(-1) signals every process we may signal, kill(0) our own group.
        processGroupId > 1 && KillNative(-processGroupId, SigKill) == 0;

    private static string? FindSetsid()
    {
        if (!OperatingSystem.IsLinux())
        {
            return null;
        }

        foreach (var candidate in (ReadOnlySpan<string>)["/usr/bin/setsid", "/bin/setsid"])
        {
            if (File.Exists(candidate))
            {
                return candidate;
            }
        }

        return null;
    }

    [LibraryImport("libc", EntryPoint = "kill", SetLastError = true)]
    private static partial int KillNative(int pid, int signal);
}
