using System.Security.Cryptography;
using System.Text;
using NATS.Client.Core;
using NATS.Client.JetStream;
using NATS.Client.KeyValueStore;
using Pipeline.Claiming;
using Pipeline.Commands;

namespace Pipeline.Nats.Claiming;

/// <summary>
/// Claims a command by creating its <c>command_id</c> in a KV bucket (create-if-absent: one round
/// trip for a new key). A command published twice, or delivered to two workers, runs once: the
/// second publish finds the key and is <see cref="ClaimOutcomeKind.AlreadyClaimed"/> (acked and
/// skipped). A redelivery of the <i>same</i> stream message (after a nack, a worker crash or a
/// server restart) finds its own claim and claims again, so retries still run; for that the claim
/// stores the stream sequence, which the claimer learns from <c>originOf</c> (e.g.
/// <see cref="Sources.NatsCommandSource.OriginOf"/>). Without it, any existing claim means
/// already claimed. A KV failure throws, which the pipeline treats as a retry later.
/// </summary>
public sealed class NatsKvClaimer : IClaimer
{
    // Longer ids are hashed: well inside the server's control line, with the bucket's prefix.
    private const int MaxVerbatimKey = 256;

    private readonly INatsKVContext _kv;
    private readonly NatsKvClaimerOptions _options;
    private readonly Func<Command, ulong?>? _originOf;
    private readonly SemaphoreSlim _bind = new(1, 1);
    private INatsKVStore? _store;

    /// <summary>Creates the claimer; the bucket is bound (or created) at the first claim.</summary>
    /// <param name="connection">A connection, best not the consumer's.</param>
    /// <param name="options">Settings; defaults when null. Validated here.</param>
    /// <param name="originOf">The stream sequence a command was delivered with, when known.</param>
    public NatsKvClaimer(INatsConnection connection, NatsKvClaimerOptions? options = null, Func<Command, ulong?>? originOf = null)
    {
        ArgumentNullException.ThrowIfNull(connection);
        _options = options ?? new NatsKvClaimerOptions();
        _options.Validate();
        _kv = new NatsKVContext(new NatsJSContext(connection));
        _originOf = originOf;
    }

    /// <summary>The key a command id is claimed under: the id itself when it is a valid KV key of at most 256 characters, else a hash of it.</summary>
    public static string KeyFor(string commandId)
    {
        ArgumentException.ThrowIfNullOrEmpty(commandId);
        // A KV key is a subject's tail: no empty token (a leading, trailing or doubled '.'), and
        // short (a subject past the server's 4 KB control line closes the connection).
        var valid = commandId.Length <= MaxVerbatimKey && commandId[0] != '.' && commandId[^1] != '.' && !commandId.Contains("..", StringComparison.Ordinal)
            && commandId.All(c => char.IsAsciiLetterOrDigit(c) || c is '-' or '/' or '_' or '=' or '.');
        return valid ? commandId : "sha256." + Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(commandId)));
    }

    /// <inheritdoc/>
    public async ValueTask<ClaimOutcome> ClaimAsync(ClaimOutcome pulled, CancellationToken cancellationToken)
    {
        if (pulled.Command is not { } command)
        {
            return pulled;
        }

        var store = _store ?? await BindAsync(cancellationToken).ConfigureAwait(false);
        var key = KeyFor(command.CommandId);
        var origin = _originOf?.Invoke(command);
        var value = $"{origin?.ToString(System.Globalization.CultureInfo.InvariantCulture) ?? "-"}/{_options.WorkerId}";
        var created = await store.TryCreateAsync(key, value, cancellationToken: cancellationToken).ConfigureAwait(false);
        if (created.Success)
        {
            return pulled;
        }

        if (created.Error is not NatsKVCreateException)
        {
            throw created.Error;
        }

        if (origin is { } sequence)
        {
            var existing = await store.TryGetEntryAsync<string>(key, cancellationToken: cancellationToken).ConfigureAwait(false);
            if (existing.Success && existing.Value.Value is { } claim && SameOrigin(claim, sequence))
            {
                return pulled; // the same stream message again: a retry, not a second publish
            }
        }

        return ClaimOutcome.AlreadyClaimed(command);
    }

    private static bool SameOrigin(string claim, ulong sequence)
    {
        var slash = claim.IndexOf('/', StringComparison.Ordinal);
        return slash > 0 && ulong.TryParse(claim.AsSpan(0, slash), System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out var claimed) && claimed == sequence;
    }

    private async ValueTask<INatsKVStore> BindAsync(CancellationToken cancellationToken)
    {
        await _bind.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            return _store ??= _options.CreateIfMissing
                ? await _kv.CreateOrUpdateStoreAsync(new NatsKVConfig(_options.Bucket) { MaxAge = _options.MaxAge, Storage = NatsKVStorageType.File }, cancellationToken).ConfigureAwait(false)
                : await _kv.GetStoreAsync(_options.Bucket, cancellationToken).ConfigureAwait(false);
        }
        finally
        {
            _bind.Release();
        }
    }
}
