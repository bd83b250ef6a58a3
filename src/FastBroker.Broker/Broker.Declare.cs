using System.Globalization;
using System.Text;

namespace FastBroker;

/// <summary>The topics of <see cref="BrokerOptions.Topics"/>, declared at every open.</summary>
public sealed partial class Broker
{
    /// <summary>
    /// Creates each declared topic that does not exist; logs each that exists with other settings (it keeps its own).
    /// Runs once the pipeline has started and before the open returns: nothing can have created them with the defaults.
    /// </summary>
    private void DeclareTopics()
    {
        foreach (var (name, wanted) in _options.Topics.OrderBy(t => t.Key, StringComparer.Ordinal))
        {
            var topic = _topics.Create(name, wanted, mustBeNew: false);
            if (topic.Options != wanted)
            {
                _options.Log?.Invoke($"topic '{name}' exists with other settings than declared ({Differences(topic.Options, wanted)}); it keeps its own: a topic's settings are fixed when it is created");
            }
        }
    }

    /// <summary>"retention age: none here, declared 1h; …" for every setting in which the two differ.</summary>
    internal static string Differences(TopicOptions existing, TopicOptions declared)
    {
        var text = new StringBuilder();
        void Compare<T>(string what, T here, T other, Func<T, string> show)
        {
            if (!EqualityComparer<T>.Default.Equals(here, other))
            {
                text.Append(text.Length == 0 ? "" : "; ").Append(what).Append(": ").Append(show(here)).Append(" here, declared ").Append(show(other));
            }
        }

        static string Bytes(long? b) => b is { } v ? v.ToString(CultureInfo.InvariantCulture) + " bytes" : "none";
        static string Age(TimeSpan? a) => a is { } v ? v.TotalMilliseconds.ToString(CultureInfo.InvariantCulture) + " ms" : "none";
        Compare("persistent", existing.Persistent, declared.Persistent, static v => v ? "yes" : "no");
        Compare("durability", existing.Durability, declared.Durability, static v => v.ToString());
        Compare("acks", existing.Acks, declared.Acks, static v => v.ToString());
        Compare("max message size", existing.MaxMessageBytes, declared.MaxMessageBytes, static v => Bytes(v));
        Compare("segment size", existing.SegmentBytes, declared.SegmentBytes, static v => Bytes(v));
        Compare("retention age", existing.RetentionAge, declared.RetentionAge, Age);
        Compare("retention size", existing.RetentionBytes, declared.RetentionBytes, Bytes);
        Compare("transient capacity", existing.TransientCapacity, declared.TransientCapacity, static v => v.ToString(CultureInfo.InvariantCulture));
        return text.Length == 0 ? "settings not shown here" : text.ToString();
    }
}
