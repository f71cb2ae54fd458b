namespace Pipeline.Testing;

/// <summary>What the fixtures that start a real server (nats-server, PostgreSQL) do alike while it comes up.</summary>
internal static class ServerReadiness
{
    /// <summary>
    /// Calls <paramref name="probe"/> every 50 ms until it succeeds; past <paramref name="bound"/>
    /// its failure is thrown under <paramref name="notReady"/>'s message. <paramref name="checkAlive"/>,
    /// called before each probe, throws as soon as the server is known not to come up at all.
    /// </summary>
    public static async Task WaitAsync(Func<Task> probe, TimeSpan bound, Func<string> notReady, Action? checkAlive = null)
    {
        var deadline = DateTime.UtcNow + bound;
        while (true)
        {
            checkAlive?.Invoke();
            try
            {
                await probe();
                return;
            }
            catch (Exception) when (DateTime.UtcNow < deadline)
            {
                await Task.Delay(50);
            }
            catch (Exception ex)
            {
                throw new InvalidOperationException(notReady(), ex);
            }
        }
    }

    /// <summary>The last five lines of a server's log, for an error message; "(no log)" when it cannot be read.</summary>
    public static string LogTail(string logFile)
    {
        try
        {
            return string.Join(" | ", File.ReadAllLines(logFile).TakeLast(5));
        }
        catch (IOException)
        {
            return "(no log)";
        }
    }
}
