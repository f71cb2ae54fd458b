using Pipeline.Modules;

namespace Pipeline.Tests.Modules;

/// <summary>
/// A file a setting names (credentials, a key, certificates) is read only when it is a regular
/// file of at most 1 MiB: a device is never read without end, a FIFO never blocks the start, and
/// each refusal says what the path is.
/// </summary>
public sealed class SettingFileTests : IDisposable
{
    private readonly string _directory = Directory.CreateTempSubdirectory("pipeline-setting-file-").FullName;

    public void Dispose() => Directory.Delete(_directory, recursive: true);

    private static string? Problem(string path)
    {
        Assert.Null(SettingFile.TryRead(path, out var problem));
        return problem;
    }

    [Fact]
    public void A_regular_file_of_at_most_1_MiB_is_read_whole()
    {
        var path = Path.Combine(_directory, "exactly-1-MiB");
        var text = new string('k', (1024 * 1024) - 3) + "\né"; // é is two bytes: 1 MiB exactly
        File.WriteAllText(path, text);

        Assert.Equal(text, SettingFile.TryRead(path, out var problem));
        Assert.Null(problem);
    }

    [Fact]
    public void A_file_past_1_MiB_is_refused_as_too_large()
    {
        var path = Path.Combine(_directory, "1-MiB-and-a-byte");
        File.WriteAllBytes(path, new byte[(1024 * 1024) + 1]);

        Assert.StartsWith("is larger than 1 MiB", Problem(path), StringComparison.Ordinal);
    }

    [Fact]
    public void A_directory_is_said_to_be_one_not_to_be_missing()
    {
        Assert.Equal("is a directory, not a file", Problem(_directory));
        Assert.Equal("does not exist", Problem(Path.Combine(_directory, "absent")));
    }

    [Fact]
    public void An_empty_file_is_refused_as_empty()
    {
        var path = Path.Combine(_directory, "empty");
        File.WriteAllBytes(path, []);

        Assert.Equal("is empty", Problem(path));
    }

    [Fact]
    public async Task An_endless_device_is_refused_without_being_read()
    {
        var problem = await Task.Run(() => Problem("/dev/zero")).WaitAsync(TimeSpan.FromSeconds(10));

        Assert.Equal("is not a regular file (a device, a FIFO or a socket)", problem);
    }

    [Fact]
    public async Task A_fifo_is_refused_without_being_opened()
    {
        var fifo = Path.Combine(_directory, "creds.fifo");
        using (var mkfifo = Process.Start("mkfifo", [fifo]))
        {
            await mkfifo.WaitForExitAsync();
            Assert.Equal(0, mkfifo.ExitCode);
        }

        // Opening a FIFO for reading waits for a writer: a check that opened it would never return.
        var problem = await Task.Run(() => Problem(fifo)).WaitAsync(TimeSpan.FromSeconds(10));

        Assert.Equal("is not a regular file (a device, a FIFO or a socket)", problem);
    }
}
