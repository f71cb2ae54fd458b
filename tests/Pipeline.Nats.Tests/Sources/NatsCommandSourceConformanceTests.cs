using System.Collections.Concurrent;
using NATS.Client.JetStream.Models;
using Pipeline.Sources;
using Pipeline.Testing.Conformance;

namespace Pipeline.Nats.Tests.Sources;

/// <summary>The JetStream source runs the conformance suite on the real nats-server, a stream and consumer of its own per case.</summary>
[Collection(NatsCollection.Name)]
public sealed class NatsCommandSourceConformanceTests(NatsServerFixture server) : CommandSourceConformance<NatsHandle>
{
    // Each message is a publish with a server ack: a few hundred show the same races as thousands.
    protected override int ConcurrentSeedSize => 400;

    protected override async ValueTask<CommandSourceBackend<NatsHandle>> CreateBackendAsync(IReadOnlyList<Command> seed, ConformanceSettings settings)
    {
        await server.StartAsync(); // a test before may have left it stopped
        return await NatsBackend.CreateAsync(server, seed, settings);
    }

    /// <summary>
    /// A stream and durable consumer made for one case, the seed published into it in order. The
    /// backend's record is the server's: the consumer's pending and ack-pending counts, and the
    /// terminate advisories it publishes (<c>$JS.EVENT.ADVISORY.CONSUMER.MSG_TERMINATED</c>) as the
    /// dead letters. The source ends when idle; the drain timeout keeps it waiting while the
    /// consumer still holds work it does not (a nacked or delayed command).
    /// </summary>
    private sealed class NatsBackend : CommandSourceBackend<NatsHandle>
    {
        private const string Consumer = "workers";

        private readonly NatsConnection _admin;
        private readonly INatsJSContext _js;
        private readonly string _stream;
        private readonly NatsSourceOptions _options;
        private readonly NatsServerFixture _server;
        private readonly Dictionary<ulong, string> _idsBySequence;
        private readonly ConcurrentQueue<DeadLetterRecord> _deadLetters = new();
        private readonly List<(NatsConnection Connection, NatsCommandSource Source)> _sources = [];
        private readonly CancellationTokenSource _closing = new();
        private INatsSub<byte[]>? _advisories;
        private Task? _listening;

        private NatsBackend(NatsServerFixture server, NatsConnection admin, string stream, NatsSourceOptions options, Dictionary<ulong, string> idsBySequence)
        {
            _server = server;
            _admin = admin;
            _js = new NatsJSContext(admin);
            _stream = stream;
            _options = options;
            _idsBySequence = idsBySequence;
            Source = Open();
        }

        public override ICommandSource<NatsHandle> Source { get; }

        public override bool EndsAtEndOfInput => false;

        public override TimeSpan? RedeliveryDeadline => _options.AckWait;

        public override long? AttemptOf(Pulled<NatsHandle> pulled) => (long)pulled.Handle.NumDelivered;

        public static async Task<NatsBackend> CreateAsync(NatsServerFixture server, IReadOnlyList<Command> seed, ConformanceSettings settings)
        {
            var stream = NatsServerFixture.UniqueName("conformance");
            var admin = server.Connect("conformance-backend");
            var js = new NatsJSContext(admin);
            await js.CreateStreamAsync(new StreamConfig(stream, [$"{stream}.>"]));
            var sequences = await JetStream.PublishAsync(admin, $"{stream}.commands", seed);
            var options = new NatsSourceOptions
            {
                Stream = stream,
                Subjects = [$"{stream}.>"],
                Consumer = Consumer,
                CreateIfMissing = false, // the backend made the consumer; the source only binds
                AckWait = settings.RedeliveryDeadline,
                MaxDeliver = -1,
                FetchBatch = 64,
                MaxAckPending = 1_000,
                IdleTimeout = settings.IdleTimeout,
                DrainTimeout = settings.IdleTimeout + TimeSpan.FromSeconds(60),
            };
            await js.CreateOrUpdateConsumerAsync(stream, new ConsumerConfig(Consumer)
            {
                AckPolicy = ConsumerConfigAckPolicy.Explicit,
                AckWait = options.AckWait,
                MaxDeliver = options.MaxDeliver,
                MaxAckPending = options.MaxAckPending,
            });

            var backend = new NatsBackend(server, admin, stream, options, seed.Select((c, i) => (sequences[i], c.CommandId)).ToDictionary());
            await backend.ListenForDeadLettersAsync();
            return backend;
        }

        public override async ValueTask<BackendRecord> ReadAsync(CancellationToken cancellationToken)
        {
            var consumer = await _js.GetConsumerAsync(_stream, Consumer, cancellationToken);
            return new BackendRecord((long)consumer.Info.NumPending, consumer.Info.NumAckPending, [.. _deadLetters]);
        }

        public override ValueTask<ICommandSource<NatsHandle>> OpenAnotherSourceAsync(CancellationToken cancellationToken) => new(Open());

        public override async ValueTask DisposeAsync()
        {
            foreach (var (connection, source) in _sources)
            {
                await source.DisposeAsync();
                await connection.DisposeAsync();
            }

            await _closing.CancelAsync();
            if (_advisories is not null)
            {
                await _advisories.DisposeAsync();
            }

            if (_listening is not null)
            {
                await _listening.ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
            }

            try
            {
                await _js.DeleteStreamAsync(_stream);
            }
            catch (NatsJSApiException)
            {
                // Gone already; each case has its own stream, so a leftover harms no other.
            }

            await _admin.DisposeAsync();
            _closing.Dispose();
        }

        private NatsCommandSource Open()
        {
            var connection = _server.Connect("conformance-source");
            var source = new NatsCommandSource(connection, _options);
            _sources.Add((connection, source));
            return source;
        }

        private async Task ListenForDeadLettersAsync()
        {
            _advisories = await _admin.SubscribeCoreAsync<byte[]>($"$JS.EVENT.ADVISORY.CONSUMER.MSG_TERMINATED.{_stream}.{Consumer}");
            await _admin.PingAsync(); // the subscription is in place on the server before any terminate
            _listening = Task.Run(async () =>
            {
                await foreach (var advisory in _advisories.Msgs.ReadAllAsync(_closing.Token))
                {
                    using var body = JsonDocument.Parse(advisory.Data ?? []);
                    var sequence = body.RootElement.GetProperty("stream_seq").GetUInt64();
                    // nats-server 2.9 records no reason; later servers carry it in the advisory.
                    var reason = body.RootElement.TryGetProperty("reason", out var given) && given.GetString() is { Length: > 0 } text ? text : null;
                    _deadLetters.Enqueue(new DeadLetterRecord(_idsBySequence.GetValueOrDefault(sequence, $"(stream sequence {sequence})"), reason));
                }
            });
        }
    }
}
