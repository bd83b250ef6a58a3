using System.Buffers.Binary;
using System.Text;
using FastBroker.Journal;
using FastBroker.Testing;

namespace FastBroker.BrokerTests;

/// <summary>
/// A record of a sealed segment damaged on disk while the broker was stopped, and a restart that trusts seals
/// (<see cref="BrokerOptions.VerifySealedSegmentsOnOpen"/> off, as <c>--trust-sealed-segments</c> and a promoted standby):
/// subscribers get the damage as an error at that record, never the damaged message, and the broker goes on.
/// </summary>
public class DamagedSegmentTests
{
    [Fact]
    public async Task A_damaged_record_of_a_trusted_sealed_segment_reaches_subscribers_as_an_error_not_as_a_message()
    {
        await using var f = await BrokerFixture.StartAsync();
        f.Broker.CreateTopic("rot", TopicOptions.Default with { SegmentBytes = 64 << 10, MaxMessageBytes = 16 << 10 });
        for (var i = 0; i < 2000; i++)
        {
            await f.Broker.PublishAsync("rot", Encoding.UTF8.GetBytes($"b{i}:").Concat(new byte[100]).ToArray());
        }

        var journalDir = Path.Combine(f.DataDirectory, "topics", "rot", "journal");
        string segment = null!;
        long victimOffset = 0, victimPosition = 0;
        await f.RestartAsync(o => o with { VerifySealedSegmentsOnOpen = false }, whileClosed: () =>
        {
            segment = Directory.GetFiles(journalDir, "*.seg").Order(StringComparer.Ordinal).ToArray()[1];
            using var file = new FileStream(segment, FileMode.Open, FileAccess.ReadWrite);
            var bytes = new byte[64 << 10];
            file.ReadExactly(bytes);
            var position = 128;
            for (var n = 0; n < 5; n++)
            {
                position += (BinaryPrimitives.ReadInt32LittleEndian(bytes.AsSpan(position)) + 7) & ~7;
            }

            victimPosition = position;
            victimOffset = BinaryPrimitives.ReadInt64LittleEndian(bytes.AsSpan(position + 8));
            var last = position + BinaryPrimitives.ReadInt32LittleEndian(bytes.AsSpan(position)) - 1;
            file.Position = last;
            file.WriteByte((byte)(bytes[last] ^ 0x10)); // a payload byte
        });

        using var pulled = f.Broker.Subscribe("rot", new SubscriptionOptions { Start = StartPosition.Earliest });
        var got = new Collected();
        var recorder = new Recorder(got);
        var damaged = Assert.Throws<BrokerException>(() =>
        {
            var deadline = DateTime.UtcNow.AddSeconds(30);
            while (DateTime.UtcNow < deadline)
            {
                pulled.Fetch(1000, ref recorder);
            }
        });
        Assert.Equal(BrokerErrorCode.DamagedRecord, damaged.Code);
        var e = Assert.IsType<JournalCorruptionException>(damaged.InnerException);
        Assert.Equal(segment, e.FilePath);
        Assert.Equal(victimPosition, e.Position);
        Assert.Equal(victimOffset, e.ExpectedOffset);
        Assert.Equal(victimOffset, got.Items.Count);
        Assert.All(got.Items, m => Assert.StartsWith($"b{m.Offset}:", m.Payload, StringComparison.Ordinal));

        // Again at the same record: never skipped.
        Assert.Equal(BrokerErrorCode.DamagedRecord, Assert.Throws<BrokerException>(() => pulled.Fetch(1000, ref recorder)).Code);
        Assert.Equal(victimOffset, got.Items.Count);

        // An inline subscription is faulted with it; the broker goes on taking and delivering messages.
        var inlineGot = new Collected();
        using var inline = f.Broker.SubscribeInline("rot", new LockedRecorder(inlineGot), new SubscriptionOptions { Start = StartPosition.Earliest });
        Assert.Equal(2000, await f.Broker.PublishAsync("rot", BrokerFixture.Utf8("after")));
        await Eventually.TrueAsync(() => inline.Fault is not null, "the inline subscription is faulted at the damaged record");
        Assert.Equal(BrokerErrorCode.DamagedRecord, Assert.IsType<BrokerException>(inline.Fault).Code);
        lock (inlineGot)
        {
            Assert.Equal(victimOffset, inlineGot.Items.Count);
        }

        using var tail = f.Broker.Subscribe("rot", new SubscriptionOptions { Start = StartPosition.AtOffset(2000) });
        var after = Consume.Drain(tail, 1);
        Assert.Equal("after", Assert.Single(after).Payload);
    }
}
