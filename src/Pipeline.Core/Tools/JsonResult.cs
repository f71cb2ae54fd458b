using System.Buffers;
using System.Text.Json;

namespace Pipeline.Tools;

/// <summary>Builds a tool's JSON result with a writer, detached from any pooled buffer.</summary>
internal static class JsonResult
{
    public static JsonElement Build<TState>(TState state, Action<Utf8JsonWriter, TState> write)
    {
        var buffer = new ArrayBufferWriter<byte>(256);
        using (var writer = new Utf8JsonWriter(buffer))
        {
            write(writer, state);
        }

        using var document = JsonDocument.Parse(buffer.WrittenMemory);
        return document.RootElement.Clone();
    }

    /// <summary>Cuts <paramref name="text"/> to <paramref name="max"/> characters, saying so.</summary>
    public static string Truncate(string text, int max) =>
        text.Length <= max ? text : string.Concat(text.AsSpan(0, max), $"... [{text.Length - max} more characters]");
}
