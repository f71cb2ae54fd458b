namespace Pipeline.Modules;

/// <summary>Turns the options records' own checks into messages that name the setting by its configuration key.</summary>
public static class ModuleErrors
{
    /// <summary>
    /// Adds every exception of an options record's <c>FindErrors</c> (each naming its property,
    /// <c>AckWait must be ...</c>) as a message under <paramref name="prefix"/>
    /// (<c>Pipeline:Nats:Source:AckWait must be ...</c>): every error, not only the first.
    /// </summary>
    public static void Add(ICollection<string> errors, string prefix, IEnumerable<ArgumentException> found)
    {
        ArgumentNullException.ThrowIfNull(errors);
        ArgumentNullException.ThrowIfNull(found);
        foreach (var ex in found)
        {
            errors.Add($"{prefix}:{MessageOf(ex)}");
        }
    }

    /// <summary>
    /// Runs <paramref name="validate"/>; an <see cref="ArgumentException"/> it throws (naming the
    /// property, <c>AckWait must be ...</c>) becomes a message under <paramref name="prefix"/>
    /// (<c>Pipeline:Nats:Source:AckWait must be ...</c>) added to <paramref name="errors"/>.
    /// A record that can list all its errors is better checked with <see cref="Add"/>.
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
            errors.Add($"{prefix}:{MessageOf(ex)}");
        }
    }

    // ArgumentException appends " (Parameter 'x')" and the out-of-range value on a second line.
    private static string MessageOf(ArgumentException ex) =>
        ex.Message.Split('\n')[0].Trim().Replace($" (Parameter '{ex.ParamName}')", string.Empty, StringComparison.Ordinal);
}
