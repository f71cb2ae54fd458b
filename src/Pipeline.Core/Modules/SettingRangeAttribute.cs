namespace Pipeline.Modules;

/// <summary>
/// The range of a whole-number setting, for the message <see cref="SettingsBinder"/> gives a value
/// that is not a number (<c>Pipeline:Engine:MaxInFlight 'lots' is not a whole number from 1 to
/// 1048576</c>) rather than the type's range. The record's own check still enforces it.
/// </summary>
[AttributeUsage(AttributeTargets.Property)]
public sealed class SettingRangeAttribute(long min, long max) : Attribute
{
    /// <summary>The least value.</summary>
    public long Min { get; } = min;

    /// <summary>The greatest value.</summary>
    public long Max { get; } = max;
}
