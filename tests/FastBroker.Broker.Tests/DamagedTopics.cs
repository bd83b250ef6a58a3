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
}
