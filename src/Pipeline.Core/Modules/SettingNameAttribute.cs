namespace Pipeline.Modules;

/// <summary>
/// Another spelling of an enum value in configuration: the command line's (<c>after-dispatch</c>
/// for <c>AckAfterDispatch</c>). <see cref="SettingsBinder"/> takes it and the value's own name,
/// case-insensitively, and lists both when a value is neither.
/// </summary>
[AttributeUsage(AttributeTargets.Field, AllowMultiple = true)]
public sealed class SettingNameAttribute(string name) : Attribute
{
    /// <summary>The spelling.</summary>
    public string Name { get; } = name;
}
