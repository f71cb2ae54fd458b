using System.Runtime.InteropServices;
using Microsoft.Win32.SafeHandles;

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

    /// <summary>Whether the open file <paramref name="handle"/> is the file <paramref name="path"/> names (Linux; false elsewhere or when either cannot be looked at).</summary>
    public static bool Same(SafeFileHandle handle, string path)
    {
        if (!OperatingSystem.IsLinux() || handle.IsInvalid || handle.IsClosed || !TryGetId(path, out var named))
        {
            return false;
        }

        var added = false;
        try
        {
            handle.DangerousAddRef(ref added);
            return TryGetId((int)handle.DangerousGetHandle(), out var open) && open == named;
        }
        finally
        {
            if (added)
            {
                handle.DangerousRelease();
            }
        }
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

    private static unsafe bool TryGetId(int descriptor, out (ulong Device, ulong Inode) id)
    {
        var buffer = stackalloc ulong[32];
        id = default;
        try
        {
            if (FStat(descriptor, buffer) != 0)
            {
                return false;
            }
        }
        catch (Exception ex) when (ex is EntryPointNotFoundException or DllNotFoundException)
        {
            return false;
        }

        id = (buffer[0], buffer[1]);
        return true;
    }

    [LibraryImport("libc", EntryPoint = "fstat")]
    private static unsafe partial int FStat(int descriptor, ulong* buffer);

    [LibraryImport("libc", EntryPoint = "stat", StringMarshalling = StringMarshalling.Utf8)]
    private static unsafe partial int Stat(string path, ulong* buffer);
}
