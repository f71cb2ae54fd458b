namespace Pipeline.Modules;

/// <summary>Turns the options records' own checks into messages that name the setting by its configuration key.</summary>
public static class ModuleErrors
{
    /// <summary>
    /// Runs <paramref name="validate"/>; an <see cref="ArgumentException"/> it throws (naming the
    /// property, <c>AckWait must be ...</c>) becomes a message under <paramref name="prefix"/>
    /// (<c>Pipeline:Nats:Source:AckWait must be ...</c>) added to <paramref name="errors"/>.
    /// </summary>
    public static void Check(ICollection<string> errors, string prefix, Action validate)
    {
        ArgumentNullException.ThrowIfNull(errors);
        ArgumentNullException.ThrowIfNull(validate);
        try
        {
            validate();
        }
        catch (ArgumentException ex)
        {
            // ArgumentException appends " (Parameter 'x')" and the out-of-range value on a second line.
            var message = ex.Message.Split('\n')[0].Trim().Replace($" (Parameter '{ex.ParamName}')", string.Empty, StringComparison.Ordinal);
            errors.Add($"{prefix}:{message}");
        }
    }
}
