using System.Buffers.Binary;
using System.Text;
using FastBroker.Engine;
using FastBroker.Replication.Internal;

namespace FastBroker.ReplicationTests.Failover;

/// <summary>What the standby-state tests read and publish: a node's copy of a position file as a reader sees it.</summary>
internal static class PositionCopies
{
    // PositionStore's magic, "FBFRPROS".
    private const long PositionFileMagic = 0x534F_5052_4246_4246L;

    /// <summary>
    /// The position committed in <paramref name="topic"/> in a node's copy of a position file (its bytes, as a reader
    /// sees them). Null: no file, no position for that topic, or not a position file (a wrong magic).
    /// </summary>
    public static long? PositionIn(string dataDirectory, string relative, string topic)
    {
        var bytes = StateFiles.ReadShared(Path.Combine(dataDirectory, relative));
        if (bytes is null || bytes.Length < 16 || BinaryPrimitives.ReadInt64LittleEndian(bytes) != PositionFileMagic)
        {
            return null;
        }

        var count = (int)Math.Clamp(BinaryPrimitives.ReadInt64LittleEndian(bytes.AsSpan(8)), 0, Math.Min(PositionStore.MaxTopics, (bytes.Length - 16) / 264));
        for (var i = 0; i < count; i++)
        {
            var entry = 16 + (i * 264);
            var name = Encoding.UTF8.GetString(bytes, entry + 1, bytes[entry]);
            var position = BinaryPrimitives.ReadInt64LittleEndian(bytes.AsSpan(entry + 256));
            if (name == topic && position != 0)
            {
                return position - 1;
            }
        }

        return null;
    }

    /// <summary>Publishes <paramref name="count"/> messages "m0", "m1", … to <paramref name="topic"/>.</summary>
    public static async Task PublishAsync(Broker broker, string topic, int count)
    {
        for (var i = 0; i < count; i++)
        {
            await broker.PublishAsync(topic, Encoding.ASCII.GetBytes($"m{i}"));
        }
    }

    /// <summary>
    /// Publishes 20 messages to <paramref name="feed"/> and 10 to <paramref name="side"/>, subscribes the durable name
    /// keeper to <paramref name="pattern"/> from its committed position, and commits <paramref name="side"/>'s 3: keeper.
    /// </summary>
    public static async Task<Subscription> KeeperAsync(Broker broker, string feed, string side, string pattern)
    {
        await PublishAsync(broker, feed, 20);
        await PublishAsync(broker, side, 10);
        var keeper = broker.Subscribe(pattern, SubscriptionOptions.Default with { DurableName = "keeper", Start = StartPosition.Committed });
        keeper.Commit(side, 3);
        return keeper;
    }
}
