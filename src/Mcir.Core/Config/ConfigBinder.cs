using System.Collections;
using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.Json.Serialization;
using System.Text.Json.Serialization.Metadata;

namespace Mcir.Core.Config;

/// <summary>
/// Binds JSON configuration (snake_case keys, kebab-case enum values) to options records. Every key is checked
/// against the target type before binding: an unknown or misspelled key is an error naming the key, where it is,
/// and the closest valid key. Defaults are the records' own.
/// <para>The configuration keys of an options type are exactly its members that binding can set: properties with a
/// setter or <c>init</c> accessor, and get-only properties filled by a constructor parameter of the same name.
/// Computed (derived, get-only) properties such as SwinIR's <c>patches_resolution</c> are never keys: they are
/// neither written by <see cref="ToJson"/> (so <c>mcir-host list</c>, the resolved configuration and the defaults a
/// configuration is merged into never show them) nor accepted when binding. <see cref="KeysOf"/> and the serializer
/// share this one rule (<see cref="OnlyConfigurationKeys"/>).</para>
/// </summary>
public static class ConfigBinder
{
    /// <summary>
    /// The reflection-based contract resolver with <see cref="OnlyConfigurationKeys"/> applied; give it to any other
    /// serializer settings that write or read options records (e.g. <c>TrainingOptions.JsonOptions</c>).
    /// </summary>
    public static IJsonTypeInfoResolver KeysOnlyResolver { get; } = new DefaultJsonTypeInfoResolver { Modifiers = { OnlyConfigurationKeys } };

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
            TypeInfoResolver = KeysOnlyResolver,
        };
        o.Converters.Add(new JsonStringEnumConverter(JsonNamingPolicy.KebabCaseLower, allowIntegerValues: false));
        return o;
    }

    /// <summary>
    /// The one rule for what is a configuration key: drops every property that deserialisation cannot set — no setter
    /// (<c>set</c>/<c>init</c>) and no constructor parameter — i.e. computed members, from an object contract.
    /// </summary>
    public static void OnlyConfigurationKeys(JsonTypeInfo info)
    {
        ArgumentNullException.ThrowIfNull(info);
        if (info.Kind != JsonTypeInfoKind.Object) return;
        for (int i = info.Properties.Count - 1; i >= 0; i--)
        {
            var p = info.Properties[i];
            if (p.Set is null && p.AssociatedParameter is null) info.Properties.RemoveAt(i);
        }
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

    /// <summary>The snake_case keys <paramref name="type"/> accepts (its settable members; see the class remarks), in declaration order.</summary>
    public static IReadOnlyList<string> KeysOf(Type type) => Members(type).Keys.ToList();

    // Key → declared type of every configuration key of an object type (empty for other types).
    private static Dictionary<string, Type> Members(Type type)
    {
        var info = JsonOptions.GetTypeInfo(type);
        return info.Kind == JsonTypeInfoKind.Object ? info.Properties.ToDictionary(p => p.Name, p => p.PropertyType) : [];
    }

    private static void Validate(JsonNode node, Type type, string where)
    {
        if (node is not JsonObject obj || !IsOptionsType(type)) return;
        var props = Members(type);
        var keys = props.Keys.ToList();
        foreach (var (key, child) in obj)
        {
            string path = where.Length == 0 ? key : $"{where}.{key}";
            if (!keys.Contains(key))
            {
                var closest = Closest(key, keys);
                string hint = closest is null ? $"valid keys: {string.Join(", ", keys)}" : $"did you mean '{(where.Length == 0 ? closest : where + "." + closest)}'?";
                throw new McirException($"unknown configuration key '{path}' ({hint})");
            }
            if (child is not null) Validate(child, props[key], path);
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
