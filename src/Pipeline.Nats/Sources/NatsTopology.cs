using NATS.Client.JetStream;
using NATS.Client.JetStream.Models;

namespace Pipeline.Nats.Sources;

/// <summary>Finds, or creates when allowed, the stream and the durable consumer.</summary>
internal sealed class NatsTopology(INatsJSContext js, NatsSourceOptions options)
{
    // JetStream error codes (server/errors.json).
    private const int StreamNotFound = 10059;
    private const int ConsumerNotFound = 10014;
    private const int StreamNameInUse = 10058;

    public async ValueTask<INatsJSConsumer> BindAsync(CancellationToken cancellationToken)
    {
        if (!options.CreateIfMissing)
        {
            try
            {
                return await js.GetConsumerAsync(options.Stream, options.Consumer, cancellationToken).ConfigureAwait(false);
            }
            catch (NatsJSApiException ex) when (ex.Error.ErrCode is StreamNotFound or ConsumerNotFound)
            {
                throw new InvalidOperationException(
                    $"Consumer '{options.Consumer}' on stream '{options.Stream}' does not exist, and CreateIfMissing is off: create it, or turn CreateIfMissing on. ({ex.Error.Description})", ex);
            }
        }

        await EnsureStreamAsync(cancellationToken).ConfigureAwait(false);
        return await js.CreateOrUpdateConsumerAsync(options.Stream, ConsumerConfig(), cancellationToken).ConfigureAwait(false);
    }

    private async ValueTask EnsureStreamAsync(CancellationToken cancellationToken)
    {
        try
        {
            await js.GetStreamAsync(options.Stream, cancellationToken: cancellationToken).ConfigureAwait(false);
            return;
        }
        catch (NatsJSApiException ex) when (ex.Error.ErrCode == StreamNotFound)
        {
        }

        try
        {
            await js.CreateStreamAsync(new StreamConfig(options.Stream, [.. options.Subjects]) { Storage = StreamConfigStorage.File }, cancellationToken).ConfigureAwait(false);
        }
        catch (NatsJSApiException ex) when (ex.Error.ErrCode == StreamNameInUse)
        {
            // Another worker of the pool created it first.
        }
    }

    private ConsumerConfig ConsumerConfig() => new(options.Consumer)
    {
        AckPolicy = ConsumerConfigAckPolicy.Explicit,
        AckWait = options.AckWait,
        MaxDeliver = options.MaxDeliver,
        MaxAckPending = options.MaxAckPending,
        FilterSubject = options.FilterSubject,
    };
}
