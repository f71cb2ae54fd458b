using System.Runtime.InteropServices;
using System.Text;

namespace Pipeline.Modules;

/// <summary>
/// A small file a setting names (credentials, a key, certificates), read once and bounded as the
/// worker starts. Only a regular file is opened: a device (<c>/dev/zero</c>) would be read without
/// end, a FIFO would block the open, and a directory is not "missing". One larger than the bound
/// is refused before it is read, and the read itself stops at the bound in case the file grew.
/// </summary>
public static partial class SettingFile
{
    /// <summary>The largest file a setting names: 1 MiB, far more than a credentials file or a certificate chain.</summary>
    public const int MaxBytes = 1 << 20;

    /// <summary>
    /// The file's text (UTF-8); null when it cannot be a setting's file, with <paramref name="problem"/>
    /// the rest of a sentence that starts with the path (<c>does not exist</c>, <c>is a directory, not a file</c>, ...).
    /// </summary>
    public static string? TryRead(string path, out string? problem)
    {
        ArgumentNullException.ThrowIfNull(path);
        problem = CheckKind(path);
        if (problem is not null)
        {
            return null;
        }

        try
        {
            using var stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite, bufferSize: 1, FileOptions.SequentialScan);
            // Sized by the file, grown if it grew, and never past the bound plus the one byte that says "more".
            var buffer = new byte[(int)Math.Clamp(stream.Length + 1, 4096, MaxBytes + 1L)];
            var length = 0;
            int read;
            while ((read = stream.Read(buffer, length, buffer.Length - length)) > 0)
            {
                length += read;
                if (length == buffer.Length)
                {
                    if (length > MaxBytes)
                    {
                        break;
                    }

                    Array.Resize(ref buffer, (int)Math.Min(2L * buffer.Length, MaxBytes + 1L));
                }
            }

            problem = length == 0 ? "is empty" : length > MaxBytes ? TooLarge : null;
            return problem is null ? Encoding.UTF8.GetString(buffer, 0, length) : null;
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException or NotSupportedException)
        {
            problem = $"cannot be read: {ex.Message}";
            return null;
        }
    }

    private const string TooLarge = "is larger than 1 MiB: not a credentials, key or certificate file";

    // What the path names, asked without opening it (opening a FIFO waits for a writer).
    private static string? CheckKind(string path)
    {
        if (Directory.Exists(path))
        {
            return "is a directory, not a file";
        }

        if (!File.Exists(path))
        {
            return "does not exist";
        }

        if (TryStat(path, out var regular, out var size))
        {
            return !regular ? "is not a regular file (a device, a FIFO or a socket)"
                : size > MaxBytes ? TooLarge
                : null;
        }

        // Without statx: a device or a FIFO has no length; an empty regular file would be refused anyway.
        var length = new FileInfo(path).Length;
        return length == 0 ? "is empty or not a regular file (a device, a FIFO or a socket)" : length > MaxBytes ? TooLarge : null;
    }

    // statx (Linux, glibc 2.28+): its struct has one layout on every architecture, unlike stat's.
    // stx_mode is the u16 at offset 28, stx_size the u64 at offset 40; the path is followed through links.
    private static unsafe bool TryStat(string path, out bool regular, out long size)
    {
        (regular, size) = (false, 0);
        if (!OperatingSystem.IsLinux())
        {
            return false;
        }

        const int AtFdCwd = -100;
        const uint TypeAndSize = 0x1 | 0x200; // STATX_TYPE | STATX_SIZE
        var buffer = stackalloc byte[256];
        try
        {
            if (Statx(AtFdCwd, path, 0, TypeAndSize, buffer) != 0)
            {
                return false;
            }
        }
        catch (Exception ex) when (ex is EntryPointNotFoundException or DllNotFoundException)
        {
            return false;
        }

        const int TypeMask = 0xF000;
        const int Regular = 0x8000;
        regular = (*(ushort*)(buffer + 28) & TypeMask) == Regular;
        size = *(long*)(buffer + 40);
        return true;
    }

    [LibraryImport("libc", EntryPoint = "statx", StringMarshalling = StringMarshalling.Utf8)]
    private static unsafe partial int Statx(int directory, string path, int flags, uint mask, byte* buffer);
}
