using System.Globalization;

namespace Pipeline.Tests.Support;

/// <summary>
/// Finds processes a test started by a unique marker in their command line (pgrep -f), so a test
/// can assert that none is left behind, and kills only those, by id, when one is.
/// </summary>
internal static class MarkedProcesses
{
    /// <summary>A <c>sleep</c> duration unique to this call, e.g. <c>40.52934711</c>: a marker that also sleeps.</summary>
    public static string SleepMarker(int seconds) =>
        string.Create(CultureInfo.InvariantCulture, $"{seconds}.{Random.Shared.Next(10_000, 99_999)}4711");

    public static IReadOnlyList<int> Find(string marker)
    {
        using var pgrep = Process.Start(new ProcessStartInfo("pgrep", ["-f", marker]) { RedirectStandardOutput = true, UseShellExecute = false })!;
        var output = pgrep.StandardOutput.ReadToEnd();
        pgrep.WaitForExit();
        return output.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)
            .Select(line => int.Parse(line, CultureInfo.InvariantCulture))
            .ToList();
    }

    /// <summary>Waits up to <paramref name="bound"/> for every process marked <paramref name="marker"/> to be gone; kills survivors by id and fails.</summary>
    public static async Task AssertGone(string marker, TimeSpan bound)
    {
        var deadline = DateTime.UtcNow + bound;
        IReadOnlyList<int> left;
        while ((left = Find(marker)).Count > 0 && DateTime.UtcNow < deadline)
        {
            await Task.Delay(20);
        }

        if (left.Count > 0)
        {
            KillAll(left);
            Assert.Fail($"processes marked '{marker}' outlived the run: {string.Join(", ", left)}");
        }
    }

    public static void KillAll(IEnumerable<int> ids)
    {
        foreach (var id in ids)
        {
            try
            {
                using var process = Process.GetProcessById(id);
                process.Kill();
            }
            catch (ArgumentException)
            {
                // already gone
            }
        }
    }
}
