using FastBroker.Engine;
using FastBroker.Testing;

namespace FastBroker.BrokerTests;

/// <summary>
/// A transient topic's slots keep their own buffer (min(MaxMessageBytes, InputEntryBytes)) for good; a larger message
/// takes a pooled array only while the ring holds it, so the memory a burst of large messages took goes back once the
/// ring has moved past them, instead of every slot keeping a buffer the size of the largest message it ever held.
/// </summary>
public class TransientSlotTests
{
    private const int Capacity = 16;
    private const int OwnBytes = 512; // min(MaxMessageBytes = 64 KiB, InputEntryBytes = 512)

    [Fact]
    public async Task After_a_burst_of_large_transient_messages_the_slot_memory_goes_back_once_the_ring_moves_past_them()
    {
        await using var f = await BrokerFixture.StartAsync();
        var b = f.Broker;
        b.CreateTopic("bursty", TopicOptions.Default with { Persistent = false, TransientCapacity = Capacity });
        using var reader = b.Subscribe("bursty", new SubscriptionOptions { Start = StartPosition.Earliest });
        Assert.Equal(Capacity * OwnBytes, SlotBytes(b));

        for (var i = 0; i < Capacity; i++)
        {
            var large = new byte[40_000];
            Array.Fill(large, (byte)('a' + i));
            await b.PublishAsync("bursty", large);
        }

        Assert.True(SlotBytes(b) >= Capacity * 40_000L, $"the burst is held: {SlotBytes(b)} bytes");
        var burst = Consume.Drain(reader, Capacity);
        Assert.Equal(Enumerable.Range(0, Capacity).Select(i => new string((char)('a' + i), 40_000)), burst.Select(m => m.Payload));

        // Ordinary messages overwrite every slot: only the slots' own buffers are left.
        for (var i = 0; i < Capacity; i++)
        {
            await b.PublishAsync("bursty", BrokerFixture.Utf8($"small{i}"));
        }

        Assert.Equal(2 * Capacity, b.GetSnapshot().Topics.Single(t => t.Name == "bursty").Head);
        Assert.True(SlotBytes(b) == Capacity * OwnBytes, $"after the ring moved past the burst the slots hold {SlotBytes(b)} bytes, expected their own {Capacity * OwnBytes}");
        Assert.Equal(Enumerable.Range(0, Capacity).Select(i => $"small{i}"), Consume.Drain(reader, Capacity).Select(m => m.Payload));
    }

    [Fact]
    public async Task A_persistent_topic_reports_no_slot_bytes()
    {
        await using var f = await BrokerFixture.StartAsync();
        await f.Broker.PublishAsync("kept", new byte[40_000]);
        Assert.Equal(0, f.Broker.GetSnapshot().Topics.Single(t => t.Name == "kept").TransientSlotBytes);
    }

    /// <summary>
    /// Ordinary messages are copied into the slots' own buffers; large ones take an array from the pool and give one
    /// back (the one the slot held), so neither allocates per message once the ring has wrapped.
    /// </summary>
    [Theory]
    [InlineData(100)]
    [InlineData(OwnBytes)]
    [InlineData(3000)]
    public void Appending_allocates_nothing_per_message_in_steady_state(int payloadBytes)
    {
        var log = new TransientLog(Capacity, OwnBytes);
        var payload = new byte[payloadBytes];
        var bytes = AllocationMeter.MinBytesPerRound(() =>
        {
            for (var i = 0; i < 4 * Capacity; i++)
            {
                log.Append([], [], payload, i, 0);
            }
        });
        Assert.Equal(0, bytes);

        // And what is read back is what was written, after the slots changed buffers.
        var small = new byte[] { 1, 2, 3 };
        log.Append([9], [], small, 0, 0);
        var buffer = new byte[OwnBytes];
        Assert.Equal(TransientReadStatus.Ok, log.TryRead(log.Head - 1, buffer, out var entry));
        Assert.Equal(new byte[] { 9, 1, 2, 3 }, buffer.AsSpan(0, entry.KeyLength + entry.PayloadLength).ToArray());
    }

    private static long SlotBytes(Broker b) => b.GetSnapshot().Topics.Single(t => t.Name == "bursty").TransientSlotBytes;
}
