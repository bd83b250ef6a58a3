using System.Globalization;
using System.Security.Cryptography;

namespace FastBroker.Engine;

// Each creation of a topic's id (TopicState.Incarnation), kept in its topic.meta as "incarnation=<decimal u64>".
internal sealed partial class TopicRegistry
{
    private const string IncarnationKey = "incarnation=";

    /// <summary>
    /// A topic's settings and its creation's id as the <c>topic.meta</c> text (what the replicator sends the standby,
    /// whose copy so carries the primary's id); 0 writes no id.
    /// </summary>
    internal static string FormatMeta(TopicOptions o, ulong incarnation) =>
        incarnation == 0 ? FormatMeta(o) : FormatMeta(o) + IncarnationKey + incarnation.ToString(CultureInfo.InvariantCulture) + "\n";

    /// <summary>
    /// The creation's id in <c>topic.meta</c> text: 0 when it has none (a topic created before the file carried one) or
    /// one that does not parse, which only makes <c>producers.state</c>'s open check the capture's time instead.
    /// </summary>
    internal static ulong IncarnationOf(string text)
    {
        foreach (var line in text.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
        {
            if (line.StartsWith(IncarnationKey, StringComparison.Ordinal))
            {
                return ulong.TryParse(line.AsSpan(IncarnationKey.Length), NumberStyles.None, CultureInfo.InvariantCulture, out var id) ? id : 0;
            }
        }

        return 0;
    }

    /// <summary>A random nonzero id: two creations of one name share it with a chance of 2^-64.</summary>
    private static ulong NewIncarnation()
    {
        Span<byte> bytes = stackalloc byte[8];
        ulong id;
        do
        {
            RandomNumberGenerator.Fill(bytes);
            id = BitConverter.ToUInt64(bytes);
        }
        while (id == 0);

        return id;
    }
}
