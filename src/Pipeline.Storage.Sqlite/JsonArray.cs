using System.Globalization;
using System.Text;
using System.Text.Json;

namespace Pipeline.Storage.Sqlite;

/// <summary>
/// A JSON array built for one parameter, read back in SQL with <c>json_each</c>: how one statement
/// takes many rows' keys (SQLite has no array parameters).
/// </summary>
internal sealed class JsonArray
{
    private readonly StringBuilder _text = new("[");

    /// <summary>How many items were added.</summary>
    public int Count { get; private set; }

    public void Add(long value) => Next().Append(value.ToString(CultureInfo.InvariantCulture));

    /// <summary>Adds a string as SQLite stores it: a lone surrogate becomes U+FFFD, as in the UTF-8 a parameter is bound as.</summary>
    public void Add(string value)
    {
        if (value.AsSpan().IndexOfAnyInRange('\uD800', '\uDFFF') >= 0)
        {
            value = Encoding.UTF8.GetString(Encoding.UTF8.GetBytes(value));
        }

        Next().Append('"').Append(JsonEncodedText.Encode(value).Value).Append('"');
    }

    /// <summary>Adds <c>[first, second]</c>, read back as <c>value -&gt;&gt; 0</c> and <c>value -&gt;&gt; 1</c>.</summary>
    public void AddPair(long first, long second) =>
        Next().Append('[').Append(first.ToString(CultureInfo.InvariantCulture)).Append(',').Append(second.ToString(CultureInfo.InvariantCulture)).Append(']');

    public override string ToString() => _text.ToString() + "]";

    private StringBuilder Next()
    {
        if (Count++ > 0)
        {
            _text.Append(',');
        }

        return _text;
    }
}
