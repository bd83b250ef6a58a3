namespace FastBroker.BrokerTests;

/// <summary>
/// A subscription copies a transient message out of its ring into a buffer of its own as long as a slot's own
/// (min(MaxMessageBytes, InputEntryBytes)); a longer message is copied into a pooled array given back once its delivery
/// is done, so a burst of large messages to many subscribers does not leave each of them holding the largest message.
/// </summary>
public class TransientCopyBufferTests
{
    private const int Capacity = 16;
    private const int OwnBytes = 512; // min(MaxMessageBytes = 64 KiB, InputEntryBytes = 512)
    private const int Subscribers = 50;
    private const int Large = 40_000;

    [Fact]
    public async Task After_a_burst_of_large_transient_messages_to_many_subscribers_their_copy_buffers_go_back_to_their_own_size()
    {
        await using var f = await BrokerFixture.StartAsync();
        var b = f.Broker;
        b.CreateTopic("bursty", TopicOptions.Default with { Persistent = false, TransientCapacity = Capacity });
        var subs = Enumerable.Range(0, Subscribers).Select(_ => b.Subscribe("bursty", new SubscriptionOptions { Start = StartPosition.Earliest })).ToList();
        try
        {
            Assert.Equal(Subscribers * (long)OwnBytes, CopyBytes(b));

            for (var i = 0; i < Capacity; i++)
            {
                var large = new byte[Large];
                Array.Fill(large, (byte)('a' + i));
                await b.PublishAsync("bursty", large);
            }

            var expected = Enumerable.Range(0, Capacity).Select(i => new string((char)('a' + i), Large)).ToList();
            foreach (var s in subs)
            {
                Assert.Equal(expected, Consume.Drain(s, Capacity).Select(m => m.Payload));
            }

            // Every subscriber delivered the whole burst and nothing is being delivered now: only their own buffers are held.
            var held = CopyBytes(b);
            Assert.True(held == Subscribers * (long)OwnBytes, $"after {Subscribers} subscribers delivered {Capacity} messages of {Large} bytes they hold {held} bytes to copy into, expected their own {Subscribers * OwnBytes}");

            // Ordinary messages after the burst are delivered from the own buffers.
            await b.PublishAsync("bursty", BrokerFixture.Utf8("small"));
            Assert.Equal("small", Consume.Drain(subs[0], 1).Single().Payload);
            Assert.Equal(Subscribers * (long)OwnBytes, CopyBytes(b));
        }
        finally
        {
            subs.ForEach(s => s.Dispose());
        }
    }

    [Fact]
    public async Task A_subscription_to_a_persistent_topic_holds_no_copy_buffer()
    {
        await using var f = await BrokerFixture.StartAsync();
        await f.Broker.PublishAsync("kept", new byte[Large]);
        using var sub = f.Broker.Subscribe("kept", new SubscriptionOptions { Start = StartPosition.Earliest });
        Assert.Single(Consume.Drain(sub, 1));
        Assert.Equal(0, CopyBytes(f.Broker));
    }

    /// <summary>
    /// A work-queue group's feed never copies out of a transient ring: a group needs a persistent topic (its acks are in a
    /// state file beside the journal), so <c>JoinGroup</c> refuses a transient one, and a group's feed reads the journal's
    /// mapping, holding no copy buffer. No group figure for that memory exists, as none can be held.
    /// </summary>
    [Fact]
    public async Task A_work_queue_group_cannot_read_a_transient_topic_so_its_feed_holds_no_copy_buffer()
    {
        await using var f = await BrokerFixture.StartAsync();
        f.Broker.CreateTopic("live", TopicOptions.Default with { Persistent = false, TransientCapacity = Capacity });
        var refused = Assert.Throws<BrokerException>(() => f.Broker.JoinGroup("live", "workers"));
        Assert.Equal(BrokerErrorCode.InvalidArgument, refused.Code);
        Assert.Contains("need a persistent topic", refused.Message, StringComparison.Ordinal);
        Assert.Empty(f.Broker.GetSnapshot().Groups);
    }

    /// <summary>
    /// Messages that fit the own buffer are copied into it; longer ones take an array from the pool and give it back
    /// after their delivery, so neither allocates per message once the pool has the array.
    /// </summary>
    [Theory]
    [InlineData(100)]
    [InlineData(OwnBytes)]
    [InlineData(3000)]
    [InlineData(Large)]
    public async Task Reading_transient_messages_allocates_nothing_per_message_in_steady_state(int payloadBytes)
    {
        await using var f = await BrokerFixture.StartAsync();
        var b = f.Broker;
        b.CreateTopic("steady", TopicOptions.Default with { Persistent = false, TransientCapacity = Capacity });
        using var sub = b.Subscribe("steady", new SubscriptionOptions { Start = StartPosition.Earliest });
        var payload = new byte[payloadBytes];
        var handler = new Counting();
        var min = MinFetchAllocation(b, sub, payload, ref handler);
        Assert.Equal(0, min);
        Assert.Equal(handler.Count * payloadBytes, handler.Bytes); // every delivery saw the whole payload
        Assert.Equal(OwnBytes, CopyBytes(b));
    }

    /// <summary>
    /// The least a round's Fetch of <see cref="Capacity"/> messages allocated, over up to 8 rounds, all on the calling
    /// thread: its publishes are waited for, not awaited, so every Fetch runs on one thread, as a consumer's loop does.
    /// Awaited, a round may resume on another pool thread, whose ArrayPool cache lacks the array the previous round gave
    /// back on its own: under load every round rented anew (4,120 B for 3,000-byte messages, once in a CI run).
    /// </summary>
    private static long MinFetchAllocation(Broker b, Subscription sub, byte[] payload, ref Counting handler)
    {
        var min = long.MaxValue;
        for (var round = 0; round < 8 && min > 0; round++)
        {
            for (var i = 0; i < Capacity; i++)
            {
                b.PublishAsync("steady", payload).AsTask().GetAwaiter().GetResult();
            }

            var before = GC.GetAllocatedBytesForCurrentThread();
            var delivered = sub.Fetch(Capacity, ref handler);
            min = Math.Min(min, GC.GetAllocatedBytesForCurrentThread() - before);
            Assert.Equal(Capacity, delivered);
        }

        return min;
    }

    private static long CopyBytes(Broker b) => b.GetSnapshot().Subscriptions.Sum(s => s.TransientCopyBytes);

    private struct Counting : IMessageHandler
    {
        public long Count;
        public long Bytes;

        public void OnMessage(scoped in MessageView message)
        {
            Count++;
            Bytes += message.Payload.Length;
        }
    }
}
