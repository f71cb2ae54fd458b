using System.Text;
using NATS.Client.JetStream;

namespace Pipeline.Cli.Tests.Support;

/// <summary>Publishing test commands to a stream, as a producer would, for the worker process tests.</summary>
internal static class StreamPublishing
{
    /// <summary>Publishes <paramref name="bodies"/> to <paramref name="subject"/>, 256 acks awaited at a time, each checked.</summary>
    public static async Task PublishAsync(this NatsServerFixture nats, string subject, IReadOnlyList<string> bodies)
    {
        await using var connection = nats.Connect();
        var js = new NatsJSContext(connection);
        for (var start = 0; start < bodies.Count; start += 256)
        {
            await Task.WhenAll(Enumerable.Range(start, Math.Min(256, bodies.Count - start)).Select(async i =>
            {
                var ack = await js.PublishAsync(subject, Encoding.UTF8.GetBytes(bodies[i]));
                ack.EnsureSuccess();
            }));
        }
    }
}
