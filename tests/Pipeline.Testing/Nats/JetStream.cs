using System.Text;
using NATS.Client.Core;
using NATS.Client.JetStream;
using NATS.Client.JetStream.Models;
using Pipeline.Commands;

namespace Pipeline.Testing;

/// <summary>What a test does on the server side of JetStream: create a stream, publish to it as a producer would, read a consumer's state.</summary>
public static class JetStream
{
    /// <summary>Publishes bodies to <paramref name="subject"/>, 256 acks in flight at a time, each checked; returns each one's stream sequence (from the server's ack).</summary>
    public static async Task<ulong[]> PublishAsync(NatsConnection connection, string subject, IReadOnlyList<byte[]> bodies, NatsHeaders? headers = null)
    {
        var js = new NatsJSContext(connection);
        var sequences = new ulong[bodies.Count];
        for (var start = 0; start < bodies.Count; start += 256)
        {
            var window = Enumerable.Range(start, Math.Min(256, bodies.Count - start))
                .Select(async i =>
                {
                    var ack = await js.PublishAsync(subject, bodies[i], headers: headers);
                    ack.EnsureSuccess();
                    sequences[i] = ack.Seq;
                })
                .ToArray();
            await Task.WhenAll(window);
        }

        return sequences;
    }

    /// <summary>Publishes each command as its JSON.</summary>
    public static Task<ulong[]> PublishAsync(NatsConnection connection, string subject, IEnumerable<Command> commands) =>
        PublishAsync(connection, subject, [.. commands.Select(c => Encoding.UTF8.GetBytes(c.ToJson()))]);

    /// <summary>Publishes each line (a command's JSON, or anything else) on a connection of its own.</summary>
    public static async Task PublishAsync(this NatsServerFixture nats, string subject, IEnumerable<string> bodies, NatsHeaders? headers = null)
    {
        await using var connection = nats.Connect();
        await PublishAsync(connection, subject, [.. bodies.Select(Encoding.UTF8.GetBytes)], headers);
    }

    /// <summary>Creates a stream (so it can be published to before a source binds to it).</summary>
    public static async Task CreateStreamAsync(NatsConnection connection, string stream, string subjects)
    {
        var js = new NatsJSContext(connection);
        await js.CreateStreamAsync(new StreamConfig(stream, [subjects]));
    }

    public static async Task<ConsumerInfo> ConsumerInfoAsync(NatsConnection connection, string stream, string consumer)
    {
        var js = new NatsJSContext(connection);
        var c = await js.GetConsumerAsync(stream, consumer);
        return c.Info;
    }
}
