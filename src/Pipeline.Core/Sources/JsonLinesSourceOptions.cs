namespace Pipeline.Sources;

/// <summary>
/// Options of a <see cref="JsonLinesFileSource"/>. Every property has a documented default, so
/// <c>new JsonLinesSourceOptions()</c> (or <see cref="Default"/>) is a working configuration;
/// out-of-range values are refused when set.
/// </summary>
public sealed record JsonLinesSourceOptions
{
    /// <summary>The default <see cref="MaxLineBytes"/>: 1 MiB.</summary>
    public const int DefaultMaxLineBytes = 1024 * 1024;

    /// <summary>The largest <see cref="MaxLineBytes"/> allowed: 64 MiB. A line is held whole while it is parsed, so this caps what one line may cost.</summary>
    public const int HardMaxLineBytes = 64 * 1024 * 1024;

    /// <summary>The defaults.</summary>
    public static JsonLinesSourceOptions Default { get; } = new();

    /// <summary>
    /// The longest line accepted, in UTF-8 bytes, not counting its line ending (<c>\n</c> or
    /// <c>\r\n</c>). A longer line becomes a <see cref="Commands.ClaimOutcomeKind.Failed"/>
    /// outcome naming it, and is skipped without ever being held whole, so memory stays bounded
    /// by this limit rather than by the input. Default <see cref="DefaultMaxLineBytes"/> (1 MiB);
    /// 1 to <see cref="HardMaxLineBytes"/> (64 MiB).
    /// </summary>
    /// <exception cref="ArgumentOutOfRangeException">The value is outside 1 to <see cref="HardMaxLineBytes"/>.</exception>
    public int MaxLineBytes
    {
        get;
        init
        {
            if (value is < 1 or > HardMaxLineBytes)
            {
                throw new ArgumentOutOfRangeException(nameof(MaxLineBytes), value, $"{nameof(MaxLineBytes)} must be between 1 and {HardMaxLineBytes} bytes (64 MiB).");
            }

            field = value;
        }
    } = DefaultMaxLineBytes;

    /// <summary>The clock delayed nacks run on. Default <see cref="TimeProvider.System"/>.</summary>
    public TimeProvider TimeProvider
    {
        get;
        init => field = value ?? throw new ArgumentNullException(nameof(TimeProvider));
    } = TimeProvider.System;
}
