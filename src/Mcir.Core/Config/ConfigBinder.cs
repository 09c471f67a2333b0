using System.Collections;
using System.Reflection;
using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.Json.Serialization;

namespace Mcir.Core.Config;

/// <summary>
/// Binds JSON configuration (snake_case keys, kebab-case enum values) to options records. Every key is checked
/// against the target type before binding: an unknown or misspelled key is an error naming the key, where it is,
/// and the closest valid key. Defaults are the records' own.
/// </summary>
public static class ConfigBinder
{
    /// <summary>Serializer settings for configuration files: snake_case members, kebab-case enums, comments allowed.</summary>
    public static readonly JsonSerializerOptions JsonOptions = CreateJsonOptions();

    private static JsonSerializerOptions CreateJsonOptions()
    {
        var o = new JsonSerializerOptions
        {
            PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower,
            DictionaryKeyPolicy = null,
            ReadCommentHandling = JsonCommentHandling.Skip,
            AllowTrailingCommas = true,
            WriteIndented = true,
            NumberHandling = JsonNumberHandling.AllowNamedFloatingPointLiterals,
            UnmappedMemberHandling = JsonUnmappedMemberHandling.Disallow,
        };
        o.Converters.Add(new JsonStringEnumConverter(JsonNamingPolicy.KebabCaseLower, allowIntegerValues: false));
        return o;
    }

    /// <summary>Reads a JSON configuration file and applies <c>key.path=value</c> overrides.</summary>
    public static JsonObject Load(string path, IEnumerable<string>? overrides = null)
    {
        JsonNode? node;
        try
        {
            node = JsonNode.Parse(File.ReadAllText(path), documentOptions: new JsonDocumentOptions { CommentHandling = JsonCommentHandling.Skip, AllowTrailingCommas = true });
        }
        catch (FileNotFoundException) { throw new McirException($"{path}: configuration file not found"); }
        catch (DirectoryNotFoundException) { throw new McirException($"{path}: configuration file not found"); }
        catch (JsonException e) { throw new McirException($"{path}: not valid JSON (line {e.LineNumber + 1}, byte {e.BytePositionInLine + 1}): {e.Message}"); }
        if (node is not JsonObject root)
            throw new McirException($"{path}: expected a JSON object at the top level");
        foreach (var o in overrides ?? [])
            ApplyOverride(root, o);
        return root;
    }

    /// <summary>Applies one <c>--set a.b.c=value</c>. The value is JSON when it parses as JSON, else a string.</summary>
    public static void ApplyOverride(JsonObject root, string assignment)
    {
        int eq = assignment.IndexOf('=');
        if (eq <= 0)
            throw new McirException($"--set {assignment}: expected key.path=value");
        string key = assignment[..eq].Trim();
        string raw = assignment[(eq + 1)..];
        JsonNode? value;
        try { value = JsonNode.Parse(raw); }
        catch (JsonException) { value = JsonValue.Create(raw); }
        var parts = key.Split('.');
        JsonObject current = root;
        for (int i = 0; i < parts.Length - 1; i++)
        {
            if (current[parts[i]] is JsonObject next) { current = next; continue; }
            if (current[parts[i]] is not null)
                throw new McirException($"--set {key}: '{string.Join('.', parts[..(i + 1)])}' is not an object");
            var created = new JsonObject();
            current[parts[i]] = created;
            current = created;
        }
        current[parts[^1]] = value;
    }

    /// <summary>Binds <paramref name="node"/> (null = all defaults) to <typeparamref name="T"/>.</summary>
    /// <param name="node">The JSON to bind; null means every default.</param>
    /// <param name="where">The node's path in the configuration, for messages (e.g. "train").</param>
    public static T Bind<T>(JsonNode? node, string where) => (T)Bind(node, typeof(T), where);

    public static object Bind(JsonNode? node, Type type, string where)
    {
        node ??= new JsonObject();
        Validate(node, type, where);
        try
        {
            return node.Deserialize(type, JsonOptions) ?? throw new McirException($"{where}: expected a value of type {type.Name}, found null");
        }
        catch (JsonException e)
        {
            string at = e.Path is { Length: > 1 } p ? where + p.TrimStart('$') : where;
            throw new McirException($"{at}: {Describe(e)}");
        }
    }

    /// <summary>The JSON form of an options object with every default filled in (for the resolved configuration).</summary>
    public static JsonNode ToJson(object options) => JsonSerializer.SerializeToNode(options, options.GetType(), JsonOptions)!;

    /// <summary>The snake_case keys <paramref name="type"/> accepts.</summary>
    public static IReadOnlyList<string> KeysOf(Type type) =>
        type.GetProperties(BindingFlags.Public | BindingFlags.Instance)
            .Where(p => p.GetIndexParameters().Length == 0 && p.GetCustomAttribute<JsonIgnoreAttribute>() is null && (p.CanWrite || HasCtorParam(type, p.Name)))
            .Select(p => p.GetCustomAttribute<JsonPropertyNameAttribute>()?.Name ?? JsonNamingPolicy.SnakeCaseLower.ConvertName(p.Name))
            .ToList();

    private static bool HasCtorParam(Type type, string name) =>
        type.GetConstructors().Any(c => c.GetParameters().Any(p => string.Equals(p.Name, name, StringComparison.OrdinalIgnoreCase)));

    private static void Validate(JsonNode node, Type type, string where)
    {
        if (node is not JsonObject obj || !IsOptionsType(type)) return;
        var props = type.GetProperties(BindingFlags.Public | BindingFlags.Instance)
            .Where(p => p.GetIndexParameters().Length == 0)
            .ToDictionary(p => p.GetCustomAttribute<JsonPropertyNameAttribute>()?.Name ?? JsonNamingPolicy.SnakeCaseLower.ConvertName(p.Name));
        var keys = KeysOf(type);
        foreach (var (key, child) in obj)
        {
            string path = where.Length == 0 ? key : $"{where}.{key}";
            if (!keys.Contains(key))
            {
                var closest = Closest(key, keys);
                string hint = closest is null ? $"valid keys: {string.Join(", ", keys)}" : $"did you mean '{(where.Length == 0 ? closest : where + "." + closest)}'?";
                throw new McirException($"unknown configuration key '{path}' ({hint})");
            }
            if (child is not null) Validate(child, props[key].PropertyType, path);
        }
    }

    // Records and classes with settable members are checked key by key; collections, dictionaries and scalars are not.
    private static bool IsOptionsType(Type t) =>
        t.IsClass && t != typeof(string) && !typeof(IEnumerable).IsAssignableFrom(t) && !typeof(JsonNode).IsAssignableFrom(t) && t != typeof(object);

    /// <summary>The candidate closest to <paramref name="key"/> by edit distance, if it is plausibly a misspelling.</summary>
    public static string? Closest(string key, IEnumerable<string> candidates)
    {
        string? best = null;
        int bestDistance = int.MaxValue;
        foreach (var c in candidates)
        {
            int d = EditDistance(key, c);
            if (d < bestDistance) { best = c; bestDistance = d; }
        }
        return best is not null && bestDistance <= Math.Max(2, key.Length / 3) ? best : null;
    }

    private static int EditDistance(string a, string b)
    {
        var prev = new int[b.Length + 1];
        var cur = new int[b.Length + 1];
        for (int j = 0; j <= b.Length; j++) prev[j] = j;
        for (int i = 1; i <= a.Length; i++)
        {
            cur[0] = i;
            for (int j = 1; j <= b.Length; j++)
                cur[j] = Math.Min(Math.Min(cur[j - 1] + 1, prev[j] + 1), prev[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1));
            (prev, cur) = (cur, prev);
        }
        return prev[b.Length];
    }

    private static string Describe(JsonException e)
    {
        // The serializer's messages mention .NET types; keep the useful part.
        string m = e.Message;
        int cut = m.IndexOf(" Path:", StringComparison.Ordinal);
        return cut > 0 ? m[..cut] : m;
    }
}
