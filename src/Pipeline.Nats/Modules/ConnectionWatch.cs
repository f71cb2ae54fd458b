using System.Diagnostics;
using Microsoft.Extensions.Logging;
using NATS.Client.Core;

namespace Pipeline.Nats.Modules;

/// <summary>
/// Says on the log when the server cannot be reached (for 2 s: a blip is not news), every 10 s
/// while it stays away, and when it is back: connected for the first time, or again. Polled:
/// NATS.Net raises no event for a first connect that keeps failing, and a dead server at start
/// is the case users meet first.
/// </summary>
internal sealed class ConnectionWatch(NatsConnection connection, string url, ILogger logger)
{
    private static readonly TimeSpan Quiet = TimeSpan.FromSeconds(2);
    private static readonly TimeSpan Every = TimeSpan.FromSeconds(10);

    public async Task WatchAsync(CancellationToken stop)
    {
        using var timer = new PeriodicTimer(TimeSpan.FromMilliseconds(500));
        var down = new Stopwatch();
        var said = TimeSpan.MinValue;
        var everOpen = false;
        try
        {
            while (await timer.WaitForNextTickAsync(stop).ConfigureAwait(false))
            {
                if (connection.ConnectionState == NatsConnectionState.Open)
                {
                    if (said != TimeSpan.MinValue)
                    {
                        // "Again" only for a connection that was open before: at start the worker never had one.
                        if (everOpen)
                        {
                            NatsModuleLog.Reconnected(logger, url, down.Elapsed.TotalSeconds);
                        }
                        else
                        {
                            NatsModuleLog.Connected(logger, url, down.Elapsed.TotalSeconds);
                        }
                    }

                    everOpen = true;
                    down.Reset();
                    said = TimeSpan.MinValue;
                    continue;
                }

                down.Start();
                if (said == TimeSpan.MinValue && down.Elapsed >= Quiet)
                {
                    said = down.Elapsed;
                    NatsModuleLog.Disconnected(logger, url, connection.ConnectionState.ToString().ToLowerInvariant());
                }
                else if (said != TimeSpan.MinValue && down.Elapsed - said >= Every)
                {
                    said = down.Elapsed;
                    NatsModuleLog.StillDown(logger, url, down.Elapsed.TotalSeconds);
                }
            }
        }
        catch (OperationCanceledException)
        {
            // The run ended.
        }
    }
}
