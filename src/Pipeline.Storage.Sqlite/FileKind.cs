using System.Runtime.InteropServices;

namespace Pipeline.Storage.Sqlite;

/// <summary>
/// What a path names, as Linux's statx says (.NET tells only files from directories): SQLite
/// opened on a device or a FIFO fails late and writes a "-journal" file beside it (in /dev for
/// /dev/null), so the store refuses those up front.
/// </summary>
internal static class FileKind
{
    private const int AtFdCwd = -100;
    private const uint StatxType = 1;
    private const int ModeOffset = 28; // struct statx's stx_mode: the same on every Linux architecture
    private const int TypeMask = 0xF000;
    private const int Regular = 0x8000;
    private const int TooManyLinks = 40;

    /// <summary>Why <paramref name="path"/> cannot hold a database, or null when it can (a regular file, nothing there yet, or not Linux).</summary>
    public static string? Refusal(string path)
    {
        if (!OperatingSystem.IsLinux())
        {
            return null;
        }

        var buffer = new byte[256];
        if (Statx(AtFdCwd, path, 0, StatxType, buffer) != 0)
        {
            // Nothing there yet is a file to create; any other failure is left to SQLite's own error.
            return Marshal.GetLastPInvokeError() == TooManyLinks ? "it is a symbolic link that never reaches a file (a loop)" : null;
        }

        var mode = BitConverter.ToUInt16(buffer, ModeOffset) & TypeMask;
        return mode == Regular ? null : "it is not a regular file (a device, a FIFO or a socket)";
    }

    [DllImport("libc", EntryPoint = "statx", SetLastError = true)]
    private static extern int Statx(int directory, [MarshalAs(UnmanagedType.LPUTF8Str)] string path, int flags, uint mask, byte[] buffer);
}
