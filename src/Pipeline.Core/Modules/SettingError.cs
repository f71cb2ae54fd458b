namespace Pipeline.Modules;

/// <summary>
/// One setting that cannot work: its key relative to the options record that checked it, with
/// <c>:</c> between the levels as configuration writes it (<c>Dispatch:Parallelism</c>), and what
/// is wrong with it (<c>must be from 1 to 4096 (it is 0).</c>).
/// </summary>
/// <param name="Key">The key under the record, <c>:</c>-separated.</param>
/// <param name="Problem">What is wrong, as the rest of a sentence that starts with the key.</param>
public sealed record SettingError(string Key, string Problem)
{
    /// <summary>The message with the key under <paramref name="prefix"/> (<c>Pipeline:Engine</c>): <c>Pipeline:Engine:Dispatch:Parallelism must be ...</c>.</summary>
    public string Under(string prefix) => string.IsNullOrEmpty(prefix) ? ToString() : $"{prefix}:{Key} {Problem}";

    /// <summary>The message with the key as C# names the property (<c>Dispatch.Parallelism must be ...</c>), for exceptions thrown to code.</summary>
    public string InCode() => $"{Key.Replace(':', '.')} {Problem}";

    /// <summary>The message with the key as configuration writes it.</summary>
    public override string ToString() => $"{Key} {Problem}";
}
