using System.ComponentModel;
using System.Globalization;
using System.Reflection;
using Microsoft.Extensions.Configuration;

namespace Pipeline.Modules;

/// <summary>
/// Binds a configuration section to an init-only options record, as the configuration binder
/// does, but never throws and never stops at the first bad value: every value that cannot be
/// converted is a message naming its key as typed (<c>Pipeline:Engine:AckMode 'sideways' is not
/// one of ...</c>) and keeps its default. Enums take their <see cref="SettingNameAttribute"/>
/// spellings (the command line's) and their names, case-insensitively; a configured list replaces
/// its default rather than adding to it. <see cref="FindUnknownKeys"/> names the keys no property
/// reads, from the records' own properties (reflection), never a hand-kept list.
/// </summary>
public static class SettingsBinder
{
    private static readonly NullabilityInfoContext Nullability = new();

    /// <summary>Binds <paramref name="section"/> onto a new <typeparamref name="T"/> (its defaults for what is not configured).</summary>
    /// <param name="section">The record's section.</param>
    /// <param name="path">The section's key as messages name it (<c>Pipeline:Nats</c>).</param>
    /// <param name="errors">Where each value that cannot be converted is added.</param>
    public static T Bind<T>(IConfiguration section, string path, ICollection<string> errors)
        where T : class, new()
    {
        ArgumentNullException.ThrowIfNull(section);
        ArgumentNullException.ThrowIfNull(errors);
        return (T)BindObject(typeof(T), section, new T(), path, errors);
    }

    /// <summary>
    /// The keys under <paramref name="section"/> that no property of <paramref name="type"/> (or
    /// of the records it holds) reads, each as typed, with <c>(did you mean ...?)</c> when one
    /// known key at that level is within two edits. <paramref name="sections"/> adds sections
    /// read by others (a module's <c>Nats</c>) with their records.
    /// </summary>
    public static IReadOnlyList<string> FindUnknownKeys(IConfiguration section, string path, Type type, IReadOnlyDictionary<string, Type>? sections = null)
    {
        ArgumentNullException.ThrowIfNull(section);
        ArgumentNullException.ThrowIfNull(type);
        var found = new List<string>();
        FindUnknown(section, path, type, sections, found);
        return found;
    }

    /// <summary>Every spelling <paramref name="enumType"/>'s values take in configuration: the <see cref="SettingNameAttribute"/> ones, then the names that differ from them other than by case.</summary>
    public static IReadOnlyList<string> Spellings(Type enumType)
    {
        ArgumentNullException.ThrowIfNull(enumType);
        var fields = enumType.GetFields(BindingFlags.Public | BindingFlags.Static);
        var named = fields.SelectMany(f => f.GetCustomAttributes<SettingNameAttribute>().Select(a => a.Name)).ToList();
        return [.. named, .. fields.Select(f => f.Name).Where(n => !named.Contains(n, StringComparer.OrdinalIgnoreCase))];
    }

    /// <summary>Parses <paramref name="text"/> as one of <paramref name="enumType"/>'s spellings (<see cref="Spellings"/>), case-insensitively; numbers are refused.</summary>
    public static bool TryParseEnum(Type enumType, string text, out object? value)
    {
        ArgumentNullException.ThrowIfNull(enumType);
        ArgumentNullException.ThrowIfNull(text);
        var wanted = text.Trim();
        foreach (var field in enumType.GetFields(BindingFlags.Public | BindingFlags.Static))
        {
            if (string.Equals(field.Name, wanted, StringComparison.OrdinalIgnoreCase)
                || field.GetCustomAttributes<SettingNameAttribute>().Any(a => string.Equals(a.Name, wanted, StringComparison.OrdinalIgnoreCase)))
            {
                value = field.GetValue(null);
                return true;
            }
        }

        value = null;
        return false;
    }

    /// <summary>The properties configuration can set: public, instance, with a setter (init-only included), of a type it can convert.</summary>
    public static IReadOnlyList<PropertyInfo> SettableProperties(Type type)
    {
        ArgumentNullException.ThrowIfNull(type);
        return [.. type.GetProperties(BindingFlags.Public | BindingFlags.Instance)
            .Where(p => p.SetMethod is { IsPublic: true } && p.GetIndexParameters().Length == 0 && KindOf(p.PropertyType) != Kind.Unsupported)];
    }

    /// <summary>Whether configuration gives <paramref name="type"/> as one value (a number, a duration, an enum, a string), rather than a section or a list.</summary>
    public static bool IsValue(Type type) => KindOf(type) == Kind.Value;

    /// <summary>Whether configuration gives <paramref name="type"/> as a list of values (<c>Key:0</c>, <c>Key:1</c>).</summary>
    public static bool IsList(Type type) => KindOf(type) == Kind.List;

    private enum Kind
    {
        Unsupported,
        Value,
        List,
        Record,
    }

    private static Kind KindOf(Type type)
    {
        var t = Nullable.GetUnderlyingType(type) ?? type;
        if (t == typeof(string) || t.IsPrimitive || t.IsEnum || t == typeof(TimeSpan) || t == typeof(Uri) || t == typeof(decimal))
        {
            return Kind.Value;
        }

        if (ElementOf(t) is { } element && KindOf(element) == Kind.Value)
        {
            return Kind.List;
        }

        return t.IsClass && !typeof(Delegate).IsAssignableFrom(t) && t.GetConstructor(Type.EmptyTypes) is not null ? Kind.Record : Kind.Unsupported;
    }

    private static Type? ElementOf(Type t)
    {
        if (t.IsArray)
        {
            return t.GetElementType();
        }

        if (t.IsGenericType && t.GetGenericTypeDefinition() is var d
            && (d == typeof(IReadOnlyList<>) || d == typeof(IEnumerable<>) || d == typeof(IReadOnlyCollection<>) || d == typeof(IList<>) || d == typeof(List<>)))
        {
            return t.GetGenericArguments()[0];
        }

        return null;
    }

    private static string Join(string path, string key) => path.Length == 0 ? key : $"{path}:{key}";

    private static object BindObject(Type type, IConfiguration section, object? current, string path, ICollection<string> errors)
    {
        // A copy: the default instance may be shared (a static default), and is never changed in place.
        var target = current is null ? Activator.CreateInstance(type)! : CloneMethod.Invoke(current, null)!;
        var properties = SettableProperties(type).ToDictionary(p => p.Name, StringComparer.OrdinalIgnoreCase);
        foreach (var child in section.GetChildren())
        {
            if (properties.TryGetValue(child.Key, out var property)
                && TryBind(property, child, property.GetValue(target), Join(path, child.Key), errors, out var value))
            {
                property.SetValue(target, value);
            }
        }

        return target;
    }

    private static readonly MethodInfo CloneMethod = typeof(object).GetMethod(nameof(MemberwiseClone), BindingFlags.Instance | BindingFlags.NonPublic)!;

    private static bool TryBind(PropertyInfo property, IConfigurationSection child, object? current, string key, ICollection<string> errors, out object? value)
    {
        value = current;
        var type = property.PropertyType;
        var nullable = Nullable.GetUnderlyingType(type) is not null || (!type.IsValueType && Nullability.Create(property).WriteState == NullabilityState.Nullable);
        var hasChildren = child.GetChildren().Any();
        switch (KindOf(type))
        {
            case Kind.Value:
                if (hasChildren)
                {
                    errors.Add($"{key} is a single value, not a section.");
                    return false;
                }

                if (child.Value is null)
                {
                    return false;
                }

                if (child.Value.Length == 0 && nullable)
                {
                    value = null;
                    return true;
                }

                return TryConvert(Nullable.GetUnderlyingType(type) ?? type, child.Value, key, errors, out value, property.GetCustomAttribute<SettingRangeAttribute>());

            case Kind.List:
                var element = ElementOf(Nullable.GetUnderlyingType(type) ?? type)!;
                IEnumerable<(string Key, string? Text)> items = hasChildren
                    ? child.GetChildren().Select(c => (Join(key, c.Key), c.Value))
                    : child.Value is { Length: > 0 } one ? [(key, one)] : [];
                if (!hasChildren && child.Value is null)
                {
                    return false;
                }

                var list = Array.CreateInstance(element, items.Count());
                var ok = true;
                var i = 0;
                foreach (var (itemKey, text) in items)
                {
                    if (text is not null && TryConvert(element, text, itemKey, errors, out var item))
                    {
                        list.SetValue(item, i++);
                    }
                    else
                    {
                        ok &= text is not null;
                        if (text is null)
                        {
                            errors.Add($"{itemKey} is a section; {key} is a list of values.");
                        }
                    }
                }

                if (!ok || i != list.Length)
                {
                    return false;
                }

                value = type.IsAssignableFrom(list.GetType()) ? list : Activator.CreateInstance(typeof(List<>).MakeGenericType(element), list);
                return true;

            case Kind.Record:
                if (!hasChildren)
                {
                    if (child.Value is { Length: 0 } && nullable)
                    {
                        value = null;
                        return true;
                    }

                    if (child.Value is { Length: > 0 })
                    {
                        errors.Add($"{key} is a section (its settings go under {key}:...), not a single value.");
                    }

                    return false;
                }

                value = BindObject(type, child, current, key, errors);
                return true;

            default:
                return false;
        }
    }

    private static bool TryConvert(Type type, string text, string key, ICollection<string> errors, out object? value, SettingRangeAttribute? range = null)
    {
        value = null;
        if (type == typeof(string))
        {
            value = text;
            return true;
        }

        if (type.IsEnum)
        {
            if (TryParseEnum(type, text, out value))
            {
                return true;
            }

            var spellings = Spellings(type);
            errors.Add($"{key} '{text}' is not one of {string.Join(", ", spellings.Take(spellings.Count - 1))} or {spellings[^1]} (any case).");
            return false;
        }

        if (type == typeof(bool))
        {
            if (bool.TryParse(text.Trim(), out var flag))
            {
                value = flag;
                return true;
            }
        }
        else if (type == typeof(Uri))
        {
            if (Uri.TryCreate(text.Trim(), UriKind.RelativeOrAbsolute, out var uri))
            {
                value = uri;
                return true;
            }
        }
        else
        {
            try
            {
                value = TypeDescriptor.GetConverter(type).ConvertFromInvariantString(text.Trim());
                return value is not null;
            }
            catch (Exception ex) when (ex is FormatException or ArgumentException or OverflowException or NotSupportedException || ex.InnerException is FormatException or OverflowException)
            {
                // Reported below, naming the key.
            }
        }

        errors.Add($"{key} '{text}' is not {Describe(type, range)}.");
        return false;
    }

    private static string Describe(Type type, SettingRangeAttribute? range) =>
        range is not null ? string.Create(CultureInfo.InvariantCulture, $"a whole number from {range.Min} to {range.Max}")
        : type == typeof(bool) ? "true or false"
        : type == typeof(TimeSpan) ? "a duration ([d.]hh:mm:ss[.fff], e.g. 00:00:30)"
        : type == typeof(Uri) ? "a URL"
        : type == typeof(int) || type == typeof(long) || type == typeof(short) || type == typeof(byte) ? string.Create(CultureInfo.InvariantCulture, $"a whole number from {type.GetField("MinValue")!.GetValue(null)} to {type.GetField("MaxValue")!.GetValue(null)}")
        : type == typeof(uint) || type == typeof(ulong) || type == typeof(ushort) ? string.Create(CultureInfo.InvariantCulture, $"a whole number from 0 to {type.GetField("MaxValue")!.GetValue(null)}")
        : type == typeof(double) || type == typeof(float) || type == typeof(decimal) ? "a number"
        : $"a {type.Name}";

    private static void FindUnknown(IConfiguration section, string path, Type type, IReadOnlyDictionary<string, Type>? sections, List<string> found)
    {
        var properties = SettableProperties(Nullable.GetUnderlyingType(type) ?? type).ToDictionary(p => p.Name, StringComparer.OrdinalIgnoreCase);
        foreach (var child in section.GetChildren())
        {
            var key = Join(path, child.Key);
            if (sections is not null && sections.FirstOrDefault(s => string.Equals(s.Key, child.Key, StringComparison.OrdinalIgnoreCase)) is { Value: { } sectionType })
            {
                FindUnknown(child, key, sectionType, null, found);
            }
            else if (properties.TryGetValue(child.Key, out var property))
            {
                if (KindOf(property.PropertyType) == Kind.Record)
                {
                    FindUnknown(child, key, property.PropertyType, null, found);
                }
            }
            else
            {
                var known = properties.Keys.Concat(sections?.Keys ?? []).ToList();
                var close = known.Select(k => (Key: k, Distance: Distance(k, child.Key))).Where(c => c.Distance <= 2).ToList();
                var best = close.Count == 0 ? null : close.Where(c => c.Distance == close.Min(x => x.Distance)).ToList();
                found.Add(best is [var only] ? $"{key} (did you mean {Join(path, only.Key)}?)" : key);
            }
        }
    }

    /// <summary>Edits (insert, delete, substitute, swap two neighbours) from one key to the other, ignoring case.</summary>
    private static int Distance(string a, string b)
    {
        a = a.ToUpperInvariant();
        b = b.ToUpperInvariant();
        var d = new int[a.Length + 1, b.Length + 1];
        for (var i = 0; i <= a.Length; i++)
        {
            d[i, 0] = i;
        }

        for (var j = 0; j <= b.Length; j++)
        {
            d[0, j] = j;
        }

        for (var i = 1; i <= a.Length; i++)
        {
            for (var j = 1; j <= b.Length; j++)
            {
                var cost = a[i - 1] == b[j - 1] ? 0 : 1;
                d[i, j] = Math.Min(Math.Min(d[i - 1, j] + 1, d[i, j - 1] + 1), d[i - 1, j - 1] + cost);
                if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1])
                {
                    d[i, j] = Math.Min(d[i, j], d[i - 2, j - 2] + 1);
                }
            }
        }

        return d[a.Length, b.Length];
    }
}
