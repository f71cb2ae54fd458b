using System.Text;
using System.Text.Json;
using System.Text.RegularExpressions;

namespace Pipeline.Hosting.Tests.Support;

/// <summary>
/// What a settings file with comments (samples/appsettings.json) shows, read token by token: the
/// keys it sets, the keys it shows commented out (<c>// "Events": ...</c>, a default of none), and
/// the keys whose value it marks as an example (<c>"Key": value, // example: ...</c>), each as a
/// full configuration key (<c>Pipeline:Engine:Dispatch:Parallelism</c>). List items count as their list.
/// </summary>
internal sealed partial class SampleSettings
{
    private SampleSettings(HashSet<string> set, HashSet<string> commented, HashSet<string> examples)
    {
        (Set, Commented, Examples) = (set, commented, examples);
    }

    /// <summary>Keys given a value.</summary>
    public IReadOnlySet<string> Set { get; }

    /// <summary>Keys shown in comments only.</summary>
    public IReadOnlySet<string> Commented { get; }

    /// <summary>Keys whose value is an example, not the default.</summary>
    public IReadOnlySet<string> Examples { get; }

    /// <summary>Every key the file shows, set or commented.</summary>
    public IEnumerable<string> Shown => Set.Concat(Commented);

    public static SampleSettings Read(string path)
    {
        var bytes = File.ReadAllBytes(path);
        var reader = new Utf8JsonReader(bytes, new JsonReaderOptions { CommentHandling = JsonCommentHandling.Allow, AllowTrailingCommas = true });
        var set = new HashSet<string>(StringComparer.Ordinal);
        var commented = new HashSet<string>(StringComparer.Ordinal);
        var examples = new HashSet<string>(StringComparer.Ordinal);
        var objects = new Stack<string>(); // the key of each open object ("" for the root)
        string? property = null;
        string? lastValue = null;
        long lastValueEnd = -1;
        var inArray = 0;
        while (reader.Read())
        {
            switch (reader.TokenType)
            {
                case JsonTokenType.StartObject:
                    objects.Push(property is null ? (objects.Count == 0 ? string.Empty : objects.Peek()) : Join(objects.Peek(), property));
                    property = null;
                    break;
                case JsonTokenType.EndObject:
                    objects.Pop();
                    break;
                case JsonTokenType.PropertyName:
                    property = reader.GetString();
                    break;
                case JsonTokenType.StartArray:
                    inArray++;
                    break;
                case JsonTokenType.EndArray:
                    if (--inArray == 0)
                    {
                        (lastValue, lastValueEnd) = (Join(objects.Peek(), property!), reader.BytesConsumed);
                        set.Add(lastValue);
                        property = null;
                    }

                    break;
                case JsonTokenType.Comment:
                    var text = reader.GetComment();
                    var sameLine = lastValue is not null && !bytes.AsSpan((int)lastValueEnd, (int)(reader.TokenStartIndex - lastValueEnd)).Contains((byte)'\n');
                    if (sameLine && text.TrimStart().StartsWith("example", StringComparison.Ordinal))
                    {
                        examples.Add(lastValue!);
                    }
                    else if (!sameLine && objects.Count > 0)
                    {
                        foreach (Match key in CommentedKey().Matches(text))
                        {
                            commented.Add(Join(objects.Peek(), key.Groups[1].Value));
                        }
                    }

                    break;
                default:
                    if (inArray == 0)
                    {
                        (lastValue, lastValueEnd) = (Join(objects.Peek(), property!), reader.BytesConsumed);
                        set.Add(lastValue);
                        property = null;
                    }

                    break;
            }
        }

        return new SampleSettings(set, commented, examples);
    }

    private static string Join(string path, string key) => path.Length == 0 ? key : $"{path}:{key}";

    // A key written as JSON at the start of a comment or after a comma: "Events": ..., "User": "..."
    [GeneratedRegex("""(?:^|,)\s*"(\w+)"\s*:""")]
    private static partial Regex CommentedKey();
}
