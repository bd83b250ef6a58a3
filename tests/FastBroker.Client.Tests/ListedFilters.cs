using System.Collections;
using System.Diagnostics.CodeAnalysis;

namespace FastBroker.ClientTests;

/// <summary>Header filters as listed, a name possibly twice (as a raw SUBSCRIBE may carry them).</summary>
internal sealed class ListedFilters(params (string Key, string Value)[] pairs) : IReadOnlyDictionary<string, string>
{
    public int Count => pairs.Length;

    public IEnumerable<string> Keys => pairs.Select(p => p.Key);

    public IEnumerable<string> Values => pairs.Select(p => p.Value);

    public string this[string key] => pairs.First(p => p.Key == key).Value;

    public bool ContainsKey(string key) => pairs.Any(p => p.Key == key);

    public bool TryGetValue(string key, [MaybeNullWhen(false)] out string value)
    {
        value = ContainsKey(key) ? this[key] : null;
        return value is not null;
    }

    public IEnumerator<KeyValuePair<string, string>> GetEnumerator() => pairs.Select(p => KeyValuePair.Create(p.Key, p.Value)).GetEnumerator();

    IEnumerator IEnumerable.GetEnumerator() => GetEnumerator();
}
