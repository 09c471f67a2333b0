using System.Collections;
using System.ComponentModel.DataAnnotations;
using System.Globalization;
using System.Reflection;
using System.Text.RegularExpressions;
using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.Json.Serialization;
using System.Text.Json.Serialization.Metadata;

namespace Mcir.Core.Config;

/// <summary>
/// Binds JSON configuration (snake_case keys, kebab-case enum values) to options records. Every key is checked
/// against the target type before binding: an unknown or misspelled key is an error naming the key, where it is,
/// and the closest valid key. Defaults are the records' own. After binding, the bound options are walked: a null in
/// a member (or list/dictionary element) that is not nullable, a collection shorter than its <see cref="MinLengthAttribute"/>,
/// a value of the wrong JSON type, and whatever an options type's own <c>Validate()</c> rejects are
/// <see cref="McirException"/>s naming the key path (e.g. <c>loss.spn.layer_weights</c>).
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

    // Binding also refuses null for non-nullable members (the walk after binding covers list and dictionary elements).
    private static readonly JsonSerializerOptions BindingOptions = new(JsonOptions) { RespectNullableAnnotations = true };

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
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new McirException($"{path}: configuration file cannot be read ({(Directory.Exists(path) ? "it is a folder" : e.Message)})", e);
        }
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

    /// <summary>
    /// A named component's options (model, degradation, loss term, layout, embedding): its defaults with
    /// <paramref name="overrides"/> applied key by key, then bound and validated. An unknown key names the closest valid
    /// one ("did you mean").
    /// </summary>
    /// <param name="component">The component (its <c>DefaultOptions</c> and <c>OptionsType</c>).</param>
    /// <param name="overrides">The configuration's keys at <paramref name="where"/>, or null for the defaults.</param>
    /// <param name="where">The configuration path, e.g. <c>model.options</c>.</param>
    /// <exception cref="McirException">An unknown key or an invalid value, named with its path.</exception>
    public static object ComponentOptions(Mcir.Abstractions.Components.IComponentDescriptor component, JsonObject? overrides, string where)
    {
        ArgumentNullException.ThrowIfNull(component);
        var merged = (JsonObject)ToJson(component.DefaultOptions);
        foreach (var (key, value) in overrides ?? [])
        {
            if (!merged.ContainsKey(key))
            {
                var keys = merged.Select(p => p.Key).ToList();
                var closest = Closest(key, keys);
                string owner = component.Kind == "model" ? $"model '{component.Name}'" : $"'{component.Name}'";
                throw new McirException($"unknown configuration key '{where}.{key}' for {owner} ({(closest is null ? "valid keys: " + string.Join(", ", keys) : $"did you mean '{where}.{closest}'?")})");
            }
            merged[key] = value?.DeepClone();
        }
        return Bind(merged, component.OptionsType, where);
    }

    /// <summary>Binds <paramref name="node"/> (null = all defaults) to <typeparamref name="T"/>.</summary>
    /// <param name="node">The JSON to bind; null means every default.</param>
    /// <param name="where">The node's path in the configuration, for messages (e.g. "train").</param>
    public static T Bind<T>(JsonNode? node, string where) => (T)Bind(node, typeof(T), where);

    public static object Bind(JsonNode? node, Type type, string where)
    {
        node ??= new JsonObject();
        Validate(node, type, where);
        object bound;
        try
        {
            bound = node.Deserialize(type, BindingOptions) ?? throw new McirException($"{where}: expected {Expected(type)}, found null");
        }
        catch (JsonException e)
        {
            throw new McirException(DescribeBindingError(e, node, type, where));
        }
        catch (ArgumentException e) // an init accessor refused the value
        {
            throw new McirException($"{(where.Length == 0 ? "configuration" : where)}: {ArgumentMessage(e, type)}");
        }
        CheckBound(bound, type, where);
        return bound;
    }

    /// <summary>
    /// Checks an options object as configured: no null where the member (or element) is not nullable, collections at
    /// least as long as their <see cref="MinLengthAttribute"/>, and the object's own parameterless <c>Validate()</c>
    /// (an <see cref="ArgumentException"/> from it becomes an <see cref="McirException"/> naming the key path).
    /// </summary>
    /// <param name="options">The bound options.</param>
    /// <param name="where">The options' key path, for messages (empty for the root).</param>
    public static void CheckBound(object options, string where) => CheckBound(options, options.GetType(), where);

    private static void CheckBound(object options, Type type, string where)
    {
        var nullability = new NullabilityInfoContext();
        CheckObject(options, where, nullability);
    }

    private static void CheckObject(object obj, string where, NullabilityInfoContext nullability)
    {
        var type = obj.GetType();
        // Options records are the project's (engine and plugins); framework objects are not walked.
        if (!IsOptionsType(type) || type.Namespace?.StartsWith("System", StringComparison.Ordinal) == true) return;
        var keys = KeysOf(type);
        foreach (var p in type.GetProperties(BindingFlags.Public | BindingFlags.Instance))
        {
            if (p.GetIndexParameters().Length != 0 || p.GetMethod is null) continue;
            string key = KeyOf(p);
            if (!keys.Contains(key)) continue;
            string path = Join(where, key);
            object? value = p.GetValue(obj);
            var info = nullability.Create(p);
            if (value is null)
            {
                if (info.ReadState == NullabilityState.NotNull && !IsNullableValueType(p.PropertyType))
                    throw new McirException($"{path}: null is not allowed (expected {Expected(p.PropertyType)}; leave the key out for the default)");
                continue;
            }
            if (p.GetCustomAttribute<MinLengthAttribute>() is { } min && Count(value) is { } n && n < min.Length)
                throw new McirException(n == 0
                    ? $"{path}: must not be empty (expected {Expected(p.PropertyType)} with at least {min.Length} {(min.Length == 1 ? "entry" : "entries")})"
                    : $"{path}: has {n} entries, expected at least {min.Length}");
            CheckValue(value, info, path, nullability);
        }
        if (type.GetMethod("Validate", BindingFlags.Public | BindingFlags.Instance, Type.EmptyTypes) is { ReturnType: var r } validate && r == typeof(void))
        {
            try { validate.Invoke(obj, null); }
            catch (TargetInvocationException e) when (e.InnerException is McirException inner)
            {
                throw new McirException(where.Length == 0 || inner.Message.StartsWith(where, StringComparison.Ordinal) ? inner.Message : $"{where}: {inner.Message}", inner);
            }
            catch (TargetInvocationException e) when (e.InnerException is ArgumentException inner)
            {
                string at = inner.ParamName is { } param && type.GetProperty(param) is { } prop && keys.Contains(KeyOf(prop)) ? Join(where, KeyOf(prop)) : where;
                throw new McirException($"{(at.Length == 0 ? "configuration" : at)}: {ArgumentMessage(inner, type)}", inner);
            }
        }
    }

    private static void CheckValue(object value, NullabilityInfo info, string path, NullabilityInfoContext nullability)
    {
        switch (value)
        {
            case JsonNode or string:
                return;
            case IDictionary dictionary:
            {
                var valueInfo = info.GenericTypeArguments.Length == 2 ? info.GenericTypeArguments[1] : null;
                foreach (DictionaryEntry entry in dictionary)
                    CheckElement(entry.Value, valueInfo, $"{path}.{entry.Key}", nullability);
                return;
            }
            case IEnumerable items when !IsOptionsType(value.GetType()):
            {
                var itemInfo = info.ElementType ?? (info.GenericTypeArguments.Length == 1 ? info.GenericTypeArguments[0] : null);
                if (itemInfo is null && IsReadOnlyDictionary(value.GetType(), out _))
                {
                    // IReadOnlyDictionary<K, V> that is not an IDictionary: walk its KeyValuePairs by reflection.
                    var valueInfo = info.GenericTypeArguments.Length == 2 ? info.GenericTypeArguments[1] : null;
                    foreach (var pair in items)
                    {
                        var t = pair!.GetType();
                        CheckElement(t.GetProperty("Value")!.GetValue(pair), valueInfo, $"{path}.{t.GetProperty("Key")!.GetValue(pair)}", nullability);
                    }
                    return;
                }
                int i = 0;
                foreach (var item in items)
                    CheckElement(item, itemInfo, $"{path}[{i++}]", nullability);
                return;
            }
            default:
                CheckObject(value, path, nullability);
                return;
        }
    }

    private static void CheckElement(object? item, NullabilityInfo? info, string path, NullabilityInfoContext nullability)
    {
        if (item is null)
        {
            if (info is { ReadState: NullabilityState.NotNull } && !IsNullableValueType(info.Type))
                throw new McirException($"{path}: null is not allowed (expected {Expected(info.Type)})");
            return;
        }
        if (info is not null) CheckValue(item, info, path, nullability);
        else CheckObject(item, path, nullability);
    }

    private static bool IsNullableValueType(Type t) => Nullable.GetUnderlyingType(t) is not null;

    private static bool IsReadOnlyDictionary(Type t, out Type? valueType)
    {
        var rod = t.GetInterfaces().Append(t).FirstOrDefault(i => i.IsGenericType && i.GetGenericTypeDefinition() == typeof(IReadOnlyDictionary<,>));
        valueType = rod?.GetGenericArguments()[1];
        return rod is not null;
    }

    private static int? Count(object value) => value switch
    {
        string s => s.Length,
        ICollection c => c.Count,
        _ => value.GetType().GetProperty("Count")?.GetValue(value) as int?,
    };

    private static string Join(string where, string key) => where.Length == 0 ? key : $"{where}.{key}";

    private static string KeyOf(PropertyInfo p) =>
        p.GetCustomAttribute<JsonPropertyNameAttribute>()?.Name ?? JsonNamingPolicy.SnakeCaseLower.ConvertName(p.Name);

    // The exception's message without " (Parameter 'x')", with the options type's member names written as their keys.
    private static string ArgumentMessage(ArgumentException e, Type type)
    {
        string m = e.ParamName is { } param ? e.Message.Replace($" (Parameter '{param}')", "") : e.Message;
        foreach (var p in type.GetProperties(BindingFlags.Public | BindingFlags.Instance))
            m = Regex.Replace(m, $@"\b{Regex.Escape(p.Name)}\b", KeyOf(p));
        return m.ReplaceLineEndings(" ");
    }

    // "train.total_iter: expected an integer, found "abc"" from the serializer's error and the JSON it read.
    private static string DescribeBindingError(JsonException e, JsonNode root, Type rootType, string where)
    {
        var segments = ParsePath(e.Path);
        string at = where;
        JsonNode? found = root;
        Type? target = rootType;
        bool resolved = segments is not null;
        foreach (var (name, index) in segments ?? [])
        {
            at = name is not null ? Join(at, name) : $"{at}[{index}]";
            found = name is not null ? (found as JsonObject)?[name] : found is JsonArray a && index < a.Count ? a[index!.Value] : null;
            target = target is null ? null : MemberType(target, name);
        }
        if (at.Length == 0) at = "configuration";
        if (!resolved || target is null) return $"{at}: {Describe(e)}";
        return found is null
            ? $"{at}: null is not allowed (expected {Expected(target)}; leave the key out for the default)"
            : $"{at}: expected {Expected(target)}, found {found.ToJsonString()}";
    }

    private static List<(string? Name, int? Index)>? ParsePath(string? path)
    {
        if (path is null || !path.StartsWith('$')) return null;
        var result = new List<(string?, int?)>();
        int pos = 1;
        var token = new Regex(@"\G(?:\.([^.\[]+)|\['((?:[^']|'')*)'\]|\[(\d+)\])");
        while (pos < path.Length)
        {
            var m = token.Match(path, pos);
            if (!m.Success) return null;
            if (m.Groups[1].Success) result.Add((m.Groups[1].Value, null));
            else if (m.Groups[2].Success) result.Add((m.Groups[2].Value.Replace("''", "'"), null));
            else result.Add((null, int.Parse(m.Groups[3].Value, CultureInfo.InvariantCulture)));
            pos += m.Length;
        }
        return result;
    }

    // The type a key (name) or list index (name null) of a value of type t holds, or null when unknown.
    private static Type? MemberType(Type t, string? name)
    {
        t = Nullable.GetUnderlyingType(t) ?? t;
        if (IsReadOnlyDictionary(t, out var valueType) && name is not null) return valueType;
        if (t.GetInterfaces().Append(t).FirstOrDefault(i => i.IsGenericType && i.GetGenericTypeDefinition() == typeof(IDictionary<,>)) is { } dict && name is not null)
            return dict.GetGenericArguments()[1];
        if (name is null)
            return t.IsArray ? t.GetElementType()
                : t.GetInterfaces().Append(t).FirstOrDefault(i => i.IsGenericType && i.GetGenericTypeDefinition() == typeof(IEnumerable<>))?.GetGenericArguments()[0];
        if (typeof(JsonNode).IsAssignableFrom(t)) return typeof(JsonNode);
        return t.GetProperties(BindingFlags.Public | BindingFlags.Instance).FirstOrDefault(p => p.GetIndexParameters().Length == 0 && KeyOf(p) == name)?.PropertyType;
    }

    /// <summary>What a value of type <paramref name="t"/> looks like in a configuration file, for messages.</summary>
    public static string Expected(Type t)
    {
        t = Nullable.GetUnderlyingType(t) ?? t;
        if (t == typeof(bool)) return "true or false";
        if (t == typeof(string)) return "a string";
        if (t == typeof(byte) || t == typeof(ushort) || t == typeof(uint) || t == typeof(ulong)) return "a non-negative integer";
        if (t == typeof(sbyte) || t == typeof(short) || t == typeof(int) || t == typeof(long)) return "an integer";
        if (t == typeof(float) || t == typeof(double) || t == typeof(decimal)) return "a number";
        if (t.IsEnum) return "one of " + string.Join(", ", Enum.GetNames(t).Select(n => JsonNamingPolicy.KebabCaseLower.ConvertName(n)));
        if (t == typeof(JsonArray)) return "a list";
        if (typeof(JsonObject).IsAssignableFrom(t)) return "an object";
        if (typeof(JsonNode).IsAssignableFrom(t)) return "a JSON value";
        if (IsReadOnlyDictionary(t, out var v) || typeof(IDictionary).IsAssignableFrom(t))
            return v is null ? "an object" : $"an object of name: {Bare(Expected(v))} pairs";
        if (typeof(IEnumerable).IsAssignableFrom(t))
            return MemberType(t, null) is { } item ? $"a list of {Plural(Expected(item))}" : "a list";
        return IsOptionsType(t) ? $"an object (keys: {string.Join(", ", KeysOf(t))})" : $"a {t.Name} value";
    }

    private static string Bare(string expected) =>
        expected.StartsWith("a ", StringComparison.Ordinal) ? expected[2..] : expected.StartsWith("an ", StringComparison.Ordinal) ? expected[3..] : expected;

    private static string Plural(string expected) => Bare(expected) switch
    {
        "integer" => "integers", "number" => "numbers", "string" => "strings", "non-negative integer" => "non-negative integers",
        var other when other.StartsWith("object", StringComparison.Ordinal) => "objects" + other[6..],
        var other => other,
    };

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
