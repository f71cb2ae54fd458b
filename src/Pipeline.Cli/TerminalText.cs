using System.Globalization;
using System.Text;

namespace Pipeline.Cli;

/// <summary>
/// Makes text from input or from a remote peer safe to print: control characters (C0, DEL, C1),
/// Unicode line separators and bidirectional overrides are shown as visible escapes, so a command
/// id or a server's reason phrase can neither move the cursor, set the title, clear the screen,
/// nor start a line of its own. Long values are cut, saying how much was left out.
/// </summary>
internal static class TerminalText
{
    /// <summary>The most characters of one value a terminal line shows.</summary>
    public const int MaxLength = 300;

    public static string Escape(string? value, int maxLength = MaxLength)
    {
        if (value is null)
        {
            return string.Empty;
        }

        var cut = value.Length > maxLength;
        var shown = cut ? value.AsSpan(0, maxLength) : value.AsSpan();
        if (!cut && shown.IndexOfAnyExcept(Safe) < 0)
        {
            return value;
        }

        var builder = new StringBuilder(shown.Length + 16);
        foreach (var rune in shown.EnumerateRunes())
        {
            Append(builder, rune);
        }

        if (cut)
        {
            builder.Append(CultureInfo.InvariantCulture, $"... [{value.Length - maxLength} more characters]");
        }

        return builder.ToString();
    }

    // Printable ASCII: the common case is returned as it is.
    private static readonly System.Buffers.SearchValues<char> Safe =
        System.Buffers.SearchValues.Create(" !\"#$%&'()*+,-./0123456789:;<=>?@ABCDEFGHIJKLMNOPQRSTUVWXYZ[\\]^_`abcdefghijklmnopqrstuvwxyz{|}~");

    private static void Append(StringBuilder builder, Rune rune)
    {
        switch (rune.Value)
        {
            case '\n': builder.Append("\\n"); return;
            case '\r': builder.Append("\\r"); return;
            case '\t': builder.Append("\\t"); return;
            case '\\': builder.Append('\\'); return;
        }

        if (IsUnsafe(rune))
        {
            if (rune.Value <= 0xFF)
            {
                builder.Append(CultureInfo.InvariantCulture, $"\\x{rune.Value:x2}");
            }
            else
            {
                builder.Append(CultureInfo.InvariantCulture, $"\\u{rune.Value:x4}");
            }

            return;
        }

        builder.Append(rune.ToString());
    }

    private static bool IsUnsafe(Rune rune)
    {
        var value = rune.Value;
        return value < 0x20 || value is >= 0x7F and <= 0x9F
            || value is 0x2028 or 0x2029 // line and paragraph separators
            || value is >= 0x202A and <= 0x202E // bidi embeddings and overrides
            || value is >= 0x2066 and <= 0x2069 // bidi isolates
            || value is 0x200E or 0x200F or 0x061C // direction marks
            || value is 0xFEFF // zero-width no-break space
            || Rune.GetUnicodeCategory(rune) is UnicodeCategory.Format or UnicodeCategory.OtherNotAssigned or UnicodeCategory.Surrogate;
    }
}
