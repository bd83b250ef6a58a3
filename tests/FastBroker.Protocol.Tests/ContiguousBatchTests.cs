using System.Buffers;
using System.Buffers.Binary;
using System.Text;
using FastBroker.Protocol;
using FastBroker.Protocol.Internal;

namespace FastBroker.ProtocolTests;

/// <summary>
/// A PUBLISH_BATCH (a DELIVER_BATCH on the client's side) is validated and enumerated from one span
/// (<c>ContiguousEntries</c>): in place when it lies within one buffer segment, from a copy when it spans segments; an
/// invalid one is checked again field by field, which names the error. Whole and split, a frame must give the same
/// messages or the same error (code, reason, field, message index): every frame here is parsed whole and as one-byte and
/// random segments, and the outcomes compared; and the span check must accept exactly what the field check accepts.
/// Fixed seeds, bounded loops.
/// </summary>
public class ContiguousBatchTests
{
    private static readonly string[] s_topics = ["orders", "o", "préférences.été", "日本.注文", new string('t', 255)];

    [Theory]
    [InlineData(11, true)]
    [InlineData(12, true)]
    [InlineData(13, false)]
    [InlineData(14, false)]
    public void Valid_batches_give_the_same_messages_whole_and_split(int seed, bool publish)
    {
        var random = new Random(seed);
        for (var i = 0; i < 300; i++)
        {
            var frame = publish ? Batch(random) : Deliveries(random);
            var log = Parse.EverySplit(frame, fromClient: publish, seed: i);
            Assert.Single(log);
        }
    }

    [Theory]
    [InlineData(21, true)]
    [InlineData(22, true)]
    [InlineData(23, true)]
    [InlineData(24, false)]
    [InlineData(25, false)]
    [InlineData(26, false)]
    public void Mutated_batches_give_the_same_outcome_whole_and_split(int seed, bool publish)
    {
        var random = new Random(seed);
        var errors = 0;
        for (var i = 0; i < 3000; i++)
        {
            var frame = publish ? Batch(random) : Deliveries(random);
            Mutate(frame, random, publish ? ProtocolConstants.HeaderSize + 20 : ProtocolConstants.HeaderSize + 8);
            Func<ReadOnlySequence<byte>, Parse.Result> parse = publish ? b => Parse.FromClient(b) : b => Parse.FromServer(b);
            var whole = parse(Segments.Whole(frame));
            foreach (var split in new[] { Segments.OneByte(frame), Segments.Random(frame, random, maxSegment: 1 + random.Next(40)) })
            {
                var other = parse(split);
                Assert.True(
                    whole.Log.SequenceEqual(other.Log) && Same(whole.Error, other.Error) && whole.Remaining == other.Remaining,
                    $"whole: {Describe(whole)}; split: {Describe(other)}; frame {Convert.ToHexString(frame)}");
            }

            errors += whole.Error.IsError ? 1 : 0;
        }

        // The mutations reach the entries: most frames are refused, some still parse (a changed payload byte, say).
        Assert.InRange(errors, 300, 2990);
    }

    /// <summary>
    /// The parser copies a batch split across segments into one array, so both of the comparisons above take the span
    /// path for valid frames: here the two checks meet directly on the same mutated (and sometimes truncated) entries.
    /// </summary>
    [Theory]
    [InlineData(31, false)]
    [InlineData(32, true)]
    public void The_span_check_accepts_exactly_what_the_field_check_accepts(int seed, bool deliveries)
    {
        var random = new Random(seed);
        var accepted = 0;
        for (var i = 0; i < 5000; i++)
        {
            var frame = deliveries ? Deliveries(random) : Batch(random);
            var fixedEnd = ProtocolConstants.HeaderSize + (deliveries ? 8 : 20);
            var count = BinaryPrimitives.ReadUInt16LittleEndian(frame.AsSpan(ProtocolConstants.HeaderSize + (deliveries ? 4 : 18)));
            Mutate(frame, random, fixedEnd);
            var entries = frame[fixedEnd..];
            if (random.Next(10) == 0)
            {
                entries = entries[..^random.Next(1, Math.Min(entries.Length, 20))];
            }

            var span = ContiguousEntries.IsValid(entries, count, deliveries ? ContiguousEntries.DeliverPrefix : ContiguousEntries.PublishPrefix);
            var cursor = new FieldCursor(Segments.OneByte(entries), new byte[2 * ProtocolConstants.MaxNameLength]);
            var field = FrameParser.EntriesFieldByField(ref cursor, count, deliveries, out _) && cursor.End();
            Assert.True(span == field, $"span check {span}, field check {field} ({cursor.Field}: {cursor.Reason}) on {count} entries {Convert.ToHexString(entries)}");
            accepted += span ? 1 : 0;
        }

        Assert.InRange(accepted, 50, 4950);
    }

    /// <summary>One PUBLISH_BATCH of 1-6 messages: topics of 1-255 bytes (multi-byte UTF-8 too), keys, 0-3 headers, payloads of 0-300 bytes.</summary>
    private static byte[] Batch(Random random)
    {
        var output = new ArrayBufferWriter<byte>();
        var batch = new PublishBatchWriter(output, 64 * 1024, firstRequestId: (ulong)random.Next(1, 1000), producerId: (ulong)random.Next(2), firstProducerSequence: 7);
        var count = random.Next(1, 7);
        for (var m = 0; m < count; m++)
        {
            var (topic, key, headers, payload) = Message(random);
            Assert.True(batch.TryAdd(topic, payload, key, headers, (uint)random.Next(3) * 1000));
        }

        batch.Complete();
        return output.WrittenSpan.ToArray();
    }

    /// <summary>One DELIVER_BATCH of 1-6 messages, as <see cref="Batch"/>, with delivery counts of 1-3.</summary>
    private static byte[] Deliveries(Random random)
    {
        var output = new ArrayBufferWriter<byte>();
        var batch = new DeliverBatchWriter(output, 64 * 1024, subscriptionId: (uint)random.Next(1, 9));
        var count = random.Next(1, 7);
        for (var m = 0; m < count; m++)
        {
            var (topic, key, headers, payload) = Message(random);
            Assert.True(batch.TryAdd((uint)random.Next(1, 4), (ulong)random.Next(), random.NextInt64(), topic, payload, key, headers));
        }

        batch.Complete();
        return output.WrittenSpan.ToArray();
    }

    /// <summary>1-3 byte changes in the body from <paramref name="entries"/> (past the batch's fixed fields), or a zeroed byte there.</summary>
    private static void Mutate(byte[] frame, Random random, int entries)
    {
        if (random.Next(8) == 0)
        {
            Array.Clear(frame, random.Next(entries, frame.Length), 1);
            return;
        }

        for (var k = random.Next(1, 4); k > 0; k--)
        {
            var at = random.Next(entries, frame.Length);
            frame[at] = random.Next(3) switch
            {
                0 => (byte)(frame[at] ^ (1 << random.Next(8))),
                1 => (byte)random.Next(256),
                _ => random.Next(2) == 0 ? (byte)0 : (byte)0xFF,
            };
        }
    }

    /// <summary>A topic of 1-255 bytes (multi-byte UTF-8 too), a key (one in three), 0-3 headers and a payload of 0-300 bytes.</summary>
    private static (byte[] Topic, byte[] Key, byte[] Headers, byte[] Payload) Message(Random random)
    {
        var headers = new byte[256];
        var writer = new HeaderBlockWriter(headers);
        for (var h = random.Next(4); h > 0; h--)
        {
            Assert.True(writer.TryAdd(Encoding.UTF8.GetBytes(s_topics[random.Next(4)]), Bytes(random, random.Next(20))));
        }

        var topic = Encoding.UTF8.GetBytes(s_topics[random.Next(s_topics.Length)]);
        return (topic, Bytes(random, random.Next(3) == 0 ? random.Next(10) : 0), headers[..writer.BytesWritten], Bytes(random, random.Next(301)));
    }

    private static byte[] Bytes(Random random, int length)
    {
        var bytes = new byte[length];
        random.NextBytes(bytes);
        return bytes;
    }

    private static bool Same(FrameError a, FrameError b)
        => a.Code == b.Code && a.Reason == b.Reason && a.Field == b.Field && a.Index == b.Index && a.Type == b.Type && a.RequestId == b.RequestId;

    private static string Describe(Parse.Result r)
        => $"log [{string.Join(" | ", r.Log)}], error {r.Error.Code} '{r.Error.Reason}' field {r.Error.Field} index {r.Error.Index}, remaining {r.Remaining}";
}
