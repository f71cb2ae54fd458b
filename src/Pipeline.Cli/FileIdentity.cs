using System.Runtime.InteropServices;

namespace Pipeline.Cli;

/// <summary>Whether two paths name the same file: through symbolic links, and on Linux through hard links too.</summary>
internal static partial class FileIdentity
{
    public static bool Same(string first, string second)
    {
        if (OperatingSystem.IsLinux() && TryGetId(first, out var a) && TryGetId(second, out var b))
        {
            return a == b;
        }

        return string.Equals(Canonical(first), Canonical(second), OperatingSystem.IsLinux() ? StringComparison.Ordinal : StringComparison.OrdinalIgnoreCase);
    }

    private static string Canonical(string path)
    {
        var full = Path.GetFullPath(path);
        try
        {
            return new FileInfo(full).ResolveLinkTarget(returnFinalTarget: true)?.FullName ?? full;
        }
        catch (IOException)
        {
            return full;
        }
    }

    // glibc's struct stat begins with st_dev and st_ino (8 bytes each) on x86-64 and arm64 alike.
    private static unsafe bool TryGetId(string path, out (ulong Device, ulong Inode) id)
    {
        var buffer = stackalloc ulong[32];
        id = default;
        try
        {
            if (Stat(path, buffer) != 0)
            {
                return false;
            }
        }
        catch (Exception ex) when (ex is EntryPointNotFoundException or DllNotFoundException)
        {
            return false; // a libc older than 2.33 exports no stat symbol: compare paths instead
        }

        id = (buffer[0], buffer[1]);
        return true;
    }

    [LibraryImport("libc", EntryPoint = "stat", StringMarshalling = StringMarshalling.Utf8)]
    private static unsafe partial int Stat(string path, ulong* buffer);
}
