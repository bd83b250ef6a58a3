using FastBroker.Engine;

namespace FastBroker;

/// <summary>Broker state outside the journals brought back in line with them when the broker opens.</summary>
public sealed partial class Broker
{
    /// <summary>
    /// Every durable subscription's committed positions (<c>subscriptions/*.pos</c>) brought back to their journals'
    /// ends, before anything is published, as <see cref="RecoverGroupStates"/> does for groups. A position can be
    /// ahead of its journal: a standby receives the position files whole before the records it lacks, and may be
    /// promoted before it has them; a power loss may cut a <c>Written</c> journal's tail while the position's page
    /// survived. New messages then take the offsets the journal lacks, and a subscription resuming from the position
    /// it holds would skip them. What that changed goes to <paramref name="reports"/>.
    /// </summary>
    private static void RecoverPositions(string dataDirectory, TopicRegistry topics, List<string> reports)
    {
        var dir = Path.Combine(dataDirectory, "subscriptions");
        if (!Directory.Exists(dir))
        {
            return;
        }

        foreach (var path in Directory.EnumerateFiles(dir, "*.pos"))
        {
            var name = Path.GetFileNameWithoutExtension(path);
            if (PositionStore.HoldsNoState(path))
            {
                // Left as it is (opening it would store a header and make it look new): subscribing under that name
                // resumes every topic from the oldest message kept, not from its fallback, and says so again.
                reports.Add($"subscription '{name}': its position file holds no state (lost to a power loss?): subscribing under that name resumes every topic from the oldest message kept, whatever its fallback; messages it had committed are delivered again");
                continue;
            }

            try
            {
                using var store = PositionStore.Open(path);
                foreach (var (topic, committed) in store.All())
                {
                    if (topics.TryGet(topic, out var t) && t.Journal is not null && committed > t.Head)
                    {
                        store.Commit(topic, t.Head);
                        reports.Add($"{topic}: subscription '{name}': its committed position {committed} was ahead of the journal, which ends at offset {t.Head} (a failover before the standby had the records, or a power loss): brought back to {t.Head}; messages published at those offsets are delivered");
                    }
                }
            }
            catch (Exception e) when (e is IOException or InvalidDataException or UnauthorizedAccessException)
            {
                // Subscribing under that name fails with the same reason.
                reports.Add($"subscription '{name}': position file not checked against the journals: {e.Message}");
            }
        }
    }
}
