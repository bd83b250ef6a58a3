using FastBroker.Engine;
using FastBroker.Journal;

namespace FastBroker.ReplicationTests.Failover;

/// <summary>What a power loss does to a (killed) node whose journal lived in the page cache.</summary>
internal static class PowerLoss
{
    /// <summary>The records of <paramref name="topic"/> from <paramref name="from"/> on are gone, and the node's host has a new boot id.</summary>
    public static void LosePageCache(NodeProcess node, string topic, long from)
    {
        var topicDir = Path.Combine(node.DataDirectory, "topics", topic);
        Assert.NotNull(JournalLog.TruncateFrom(Path.Combine(topicDir, TopicRegistry.JournalDirectory), TopicRegistry.JournalOptionsIn(topicDir), from, "simulated power loss"));
        var state = Path.Combine(node.DataDirectory, "replication", "node.state");
        var lines = File.ReadAllLines(state);
        Assert.Contains(lines, l => l.StartsWith("boot=", StringComparison.Ordinal));
        File.WriteAllLines(state, lines.Select(l => l.StartsWith("boot=", StringComparison.Ordinal) ? "boot=00000000-0000-0000-0000-000000000000" : l));
    }
}
