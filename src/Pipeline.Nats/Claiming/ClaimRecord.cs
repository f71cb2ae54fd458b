using System.Buffers;
using System.Globalization;
using System.Text;
using System.Text.Json;

namespace Pipeline.Nats.Claiming;

/// <summary>What a claim record says became of its command.</summary>
internal enum ClaimState
{
    /// <summary>A worker took the command and may be running it.</summary>
    Claimed,

    /// <summary>Its tool succeeded.</summary>
    Completed,

    /// <summary>Its tool failed and was given up on.</summary>
    Failed,
}

/// <summary>
/// The value of a claim key: <c>{"state":"claimed","worker":"host-42","instance":"9f…","seq":123}</c>.
/// JSON, so an operator reading the bucket (<c>nats kv get</c>) sees who holds what. A value
/// written by an earlier version (<c>123/host-42</c>, or <c>-/host-42</c> without a sequence) is
/// read as a claim with no instance: <see cref="IsLegacy"/>.
/// </summary>
internal sealed record ClaimRecord(ClaimState State, string Worker, string Instance, ulong? Sequence)
{
    /// <summary>A value no claimer wrote: read as a legacy claim without a sequence.</summary>
    public static ClaimRecord Unknown { get; } = new(ClaimState.Claimed, string.Empty, string.Empty, null);

    /// <summary>Written by a worker before claim records carried a state: it says neither whether the command finished nor whether its worker lives.</summary>
    public bool IsLegacy => Instance.Length == 0;

    public byte[] ToUtf8()
    {
        var buffer = new ArrayBufferWriter<byte>(128);
        using (var writer = new Utf8JsonWriter(buffer))
        {
            writer.WriteStartObject();
            writer.WriteString("state", State switch { ClaimState.Claimed => "claimed", ClaimState.Completed => "completed", _ => "failed" });
            writer.WriteString("worker", Worker);
            writer.WriteString("instance", Instance);
            if (Sequence is { } sequence)
            {
                writer.WriteNumber("seq", sequence);
            }

            writer.WriteEndObject();
        }

        return buffer.WrittenSpan.ToArray();
    }

    /// <summary>Reads a record; null for a value that is neither a record nor a legacy claim.</summary>
    public static ClaimRecord? Parse(ReadOnlySpan<byte> value)
    {
        if (value.IsEmpty)
        {
            return null;
        }

        return value[0] == (byte)'{' ? ParseJson(value) : ParseLegacy(value);
    }

    private static ClaimRecord? ParseJson(ReadOnlySpan<byte> value)
    {
        ClaimState? state = null;
        string? worker = null;
        string? instance = null;
        ulong? sequence = null;
        try
        {
            var reader = new Utf8JsonReader(value);
            if (!reader.Read() || reader.TokenType != JsonTokenType.StartObject)
            {
                return null;
            }

            while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
            {
                var name = reader.GetString();
                reader.Read();
                switch (name)
                {
                    case "state" when reader.TokenType == JsonTokenType.String:
                        state = reader.GetString() switch { "claimed" => ClaimState.Claimed, "completed" => ClaimState.Completed, "failed" => ClaimState.Failed, _ => null };
                        break;
                    case "worker" when reader.TokenType == JsonTokenType.String:
                        worker = reader.GetString();
                        break;
                    case "instance" when reader.TokenType == JsonTokenType.String:
                        instance = reader.GetString();
                        break;
                    case "seq" when reader.TokenType == JsonTokenType.Number && reader.TryGetUInt64(out var seq):
                        sequence = seq;
                        break;
                    default:
                        reader.Skip(); // a field a later version added
                        break;
                }
            }
        }
        catch (JsonException)
        {
            return null;
        }

        return state is { } s && !string.IsNullOrEmpty(instance) ? new ClaimRecord(s, worker ?? string.Empty, instance, sequence) : null;
    }

    private static ClaimRecord? ParseLegacy(ReadOnlySpan<byte> value)
    {
        var text = Encoding.UTF8.GetString(value);
        var slash = text.IndexOf('/', StringComparison.Ordinal);
        if (slash <= 0)
        {
            return null;
        }

        ulong? sequence = ulong.TryParse(text.AsSpan(0, slash), NumberStyles.None, CultureInfo.InvariantCulture, out var seq) ? seq : null;
        return new ClaimRecord(ClaimState.Claimed, text[(slash + 1)..], string.Empty, sequence);
    }
}
