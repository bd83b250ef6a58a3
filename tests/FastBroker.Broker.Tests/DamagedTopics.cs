using System.Buffers.Binary;
using System.Collections.Concurrent;
using System.Text;
using FastBroker.Testing;

namespace FastBroker.BrokerTests;

/// <summary>
/// A persistent topic whose second segment holds damaged records: <see cref="Records"/> messages (<c>b{offset}:</c> and
/// 100 zero bytes) over 64 KiB segments, then a restart that trusts seals with the chosen records of the second segment
/// damaged (a payload byte flipped: bit rot while the broker was stopped).
/// </summary>
internal static class DamagedTopics
{
    public const int Records = 2000;

    /// <summary>Creates and fills topic <paramref name="name"/> (<paramref name="options"/>, or 64 KiB segments), then restarts <paramref name="f"/>'s broker with a damaged second segment, logging to <paramref name="log"/>.</summary>
    /// <param name="f">The broker.</param>
    /// <param name="name">The topic.</param>
    /// <param name="log">Where the restarted broker logs.</param>
    /// <param name="damage">Given the second segment's record count, the record numbers (0-based, in it) to damage.</param>
    /// <param name="options">The topic's options (64 KiB segments when null).</param>
    /// <param name="how">How each record is damaged (journal directory, segment index, record number): a payload byte
    /// flipped (<see cref="RecordDamage.FlipPayloadByte"/>) when null.</param>
    /// <returns>Each damaged record's segment file, offset and byte position, in order.</returns>
    public static async Task<(string Segment, long Offset, long Position)[]> CreateAsync(BrokerFixture f, string name, ConcurrentQueue<string> log, Func<int, IEnumerable<int>> damage, TopicOptions? options = null, Func<string, int, int, (string, long, long)>? how = null)
    {
        how ??= RecordDamage.FlipPayloadByte;
        f.Broker.CreateTopic(name, options ?? TopicOptions.Default with { SegmentBytes = 64 << 10, MaxMessageBytes = 16 << 10 });
        for (var i = 0; i < Records; i++)
        {
            await f.Broker.PublishAsync(name, Encoding.UTF8.GetBytes($"b{i}:").Concat(new byte[100]).ToArray());
        }

        var journalDir = Path.Combine(f.DataDirectory, "topics", name, "journal");
        (string, long, long)[] damaged = [];
        await f.RestartAsync(o => o with { VerifySealedSegmentsOnOpen = false, Log = log.Enqueue }, whileClosed: () =>
        {
            var segment = Directory.GetFiles(journalDir, "*.seg").Order(StringComparer.Ordinal).ToArray()[1];
            damaged = [.. damage(RecordCount(segment)).Select(i => how(journalDir, 1, i))];
        });
        return damaged;
    }

    /// <summary>The records of a segment file: from its header on, up to a zero length word or its end.</summary>
    public static int RecordCount(string segment)
    {
        var bytes = File.ReadAllBytes(segment);
        var (position, count) = (RecordDamage.SegmentHeaderBytes, 0);
        while (position + 32 <= bytes.Length && BinaryPrimitives.ReadInt32LittleEndian(bytes.AsSpan(position)) is var length and > 0)
        {
            position += (length + 7) & ~7;
            count++;
        }

        return count;
    }

    /// <summary>
    /// Acks what <paramref name="member"/> is delivered, each checked to carry its own offset's payload, until
    /// <paramref name="intact"/> records came or the group's feed says in <paramref name="log"/> that it is stuck at the
    /// damage (which fails the test). Returns the offsets delivered.
    /// </summary>
    public static List<long> DeliverAll(WorkQueueMember member, ConcurrentQueue<string> log, int intact, int batch = 256)
    {
        var seen = new List<long>();
        bool Stuck() => log.Any(l => l.Contains("the feed cannot go past", StringComparison.Ordinal));
        Eventually.True(() =>
        {
            var got = new Collected();
            var r = new Recorder(got);
            member.Fetch(batch, ref r);
            foreach (var m in got.Items)
            {
                seen.Add(m.Offset);
                Assert.True(member.Ack(m.Offset, m.DeliveryCount));
                Assert.StartsWith($"b{m.Offset}:", m.Payload, StringComparison.Ordinal);
            }

            return seen.Count >= intact || Stuck();
        }, $"the group delivers every intact record ({intact}), or its feed says it is stuck at the damage");

        Assert.False(Stuck(), $"the group's feed waits at the damage: {log.FirstOrDefault(l => l.Contains("the feed cannot go past", StringComparison.Ordinal))}");
        return seen;
    }
}
