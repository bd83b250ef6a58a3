using System.Buffers;
using System.Collections.Concurrent;
using System.Text;
using FastBroker.Testing;

namespace FastBroker.BrokerTests;

/// <summary>The claim API a network server publishes through: ordered sink confirmations, failures in order, idempotent producers.</summary>
public class ClaimPublishTests
{
    [Fact]
    public async Task Claimed_batch_is_confirmed_in_order_with_dense_offsets_and_headers_pass_verbatim()
    {
        await using var f = await BrokerFixture.StartAsync();
        var sink = new RecordingSink();
        var headers = new MessageHeaders().Add("trace", "abc").Add("kind", "order");

        Publish(f.Broker, sink, [("orders", "a", 1), ("orders", "b", 2), ("orders", "c", 3)], headers.Encoded.ToArray());

        var confirms = await sink.WaitForAsync(3);
        Assert.Equal([(1UL, 0L, false), (2UL, 1L, false), (3UL, 2L, false)], confirms.Select(c => (c.Token, c.Offset, c.Duplicate)));

        using var sub = f.Broker.Subscribe("orders", new SubscriptionOptions { Start = StartPosition.Earliest });
        var got = new List<Message>();
        await foreach (var m in sub.ReadAllAsync())
        {
            got.Add(m);
            if (got.Count == 3)
            {
                break;
            }
        }

        Assert.Equal(["a", "b", "c"], got.Select(m => Encoding.UTF8.GetString(m.Payload.Span)));
        Assert.Equal(headers.Encoded.ToArray(), got[0].EncodedHeaders.ToArray());
        Assert.Equal("order", Encoding.UTF8.GetString(got[1].Headers.Single(h => h.Key == "kind").Value));
    }

    [Fact]
    public async Task Refusals_take_their_slot_so_outcomes_stay_in_publish_order()
    {
        await using var f = await BrokerFixture.StartAsync(o => o with { AutoCreateTopics = false });
        f.Broker.CreateTopic("known");
        var sink = new RecordingSink();
        var big = new byte[(64 * 1024) + 1];

        Assert.True(f.Broker.TryBeginPublish(6, out var claim));
        claim.Add("known"u8, default, default, Seq("one"), default, sink, 1);
        claim.Add("unknown"u8, default, default, Seq("x"), default, sink, 2);
        claim.AddFailed(BrokerErrorCode.InvalidArgument, "decided by the caller", sink, 3);
        claim.Add("known"u8, default, default, new ReadOnlySequence<byte>(big), default, sink, 4);
        claim.Add("known"u8, default, default, Seq("two"), new PublishParameters(Durability: PublishDurability.StandbyDurable), sink, 5);
        claim.Add("known"u8, default, default, Seq("three"), default, sink, 6);
        claim.Commit();

        var outcomes = await sink.WaitForAsync(6);
        Assert.Equal([1UL, 2UL, 3UL, 4UL, 5UL, 6UL], outcomes.Select(o => o.Token));
        Assert.Equal(
            [BrokerErrorCode.None, BrokerErrorCode.UnknownTopic, BrokerErrorCode.InvalidArgument, BrokerErrorCode.MessageTooLarge, BrokerErrorCode.InvalidArgument, BrokerErrorCode.None],
            outcomes.Select(o => o.Error));
        Assert.Equal(0, outcomes[0].Offset);
        Assert.Equal(1, outcomes[5].Offset);
        Assert.Contains("standby", outcomes[4].Reason, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Fsynced_confirmation_needs_an_fsynced_topic()
    {
        await using var f = await BrokerFixture.StartAsync();
        f.Broker.CreateTopic("synced", TopicOptions.Default with { Durability = Durability.Fsynced, SegmentBytes = 4L << 20 });
        f.Broker.CreateTopic("written", TopicOptions.Default with { Durability = Durability.Written, SegmentBytes = 4L << 20 });
        f.Broker.CreateTopic("memory", TopicOptions.Default with { Persistent = false });
        var sink = new RecordingSink();
        var fsync = new PublishParameters(Durability: PublishDurability.Fsynced);

        Assert.True(f.Broker.TryBeginPublish(4, out var claim));
        claim.Add("synced"u8, default, default, Seq("a"), fsync, sink, 1);
        claim.Add("written"u8, default, default, Seq("b"), fsync, sink, 2);
        claim.Add("memory"u8, default, default, Seq("c"), new PublishParameters(Durability: PublishDurability.Written), sink, 3);
        claim.Add("memory"u8, default, default, Seq("d"), default, sink, 4);
        claim.Commit();

        var outcomes = (await sink.WaitForAsync(4)).OrderBy(o => o.Token).ToList();
        Assert.Equal(BrokerErrorCode.None, outcomes[0].Error);
        Assert.Equal(BrokerErrorCode.InvalidArgument, outcomes[1].Error);
        Assert.Equal(BrokerErrorCode.InvalidArgument, outcomes[2].Error);
        Assert.Equal(BrokerErrorCode.None, outcomes[3].Error);
    }

    [Fact]
    public async Task A_batch_sink_gets_its_journaler_confirmations_then_one_batch_end_on_the_journaler_thread()
    {
        await using var f = await BrokerFixture.StartAsync();
        f.Broker.CreateTopic("synced", TopicOptions.Default with { Durability = Durability.Fsynced, SegmentBytes = 4L << 20 });
        var a = new BatchSink();
        var b = new BatchSink();

        // Two rounds of one claim each: A and B interleaved, a failure, and an fsynced publish (confirmed later by the
        // topic's group commit, outside any journaler batch).
        for (var round = 0UL; round < 2; round++)
        {
            var t = round * 10;
            Assert.True(f.Broker.TryBeginPublish(6, out var claim));
            claim.Add("orders"u8, default, default, Seq("a1"), default, a, t + 1);
            claim.Add("orders"u8, default, default, Seq("b1"), default, b, t + 2);
            claim.Add("orders"u8, default, default, Seq("a2"), default, a, t + 3);
            claim.AddFailed(BrokerErrorCode.InvalidArgument, "refused", a, t + 4);
            claim.Add("synced"u8, default, default, Seq("s"), new PublishParameters(Durability: PublishDurability.Fsynced), a, t + 5);
            claim.Add("orders"u8, default, default, Seq("b2"), default, b, t + 6);
            claim.Commit();
        }

        Eventually.True(() => a.EndedAfter(4) && b.EndedAfter(4), "4 batch confirmations each, the last one followed by its batch end");
        var journaler = a.Events.First(e => e.Kind == "batch").Thread;
        foreach (var sink in new[] { a, b })
        {
            var events = sink.Events.ToList();
            var pending = 0;
            foreach (var e in events)
            {
                if (e.Kind is "batch" or "end")
                {
                    Assert.Equal(journaler, e.Thread);
                }

                if (e.Kind == "batch")
                {
                    pending++;
                }
                else if (e.Kind == "end")
                {
                    Assert.True(pending > 0, "a batch end with no confirmation before it");
                    pending = 0;
                }
            }

            Assert.Equal(0, pending); // the last confirmation has its batch end
        }

        Assert.Equal([1UL, 3UL, 11UL, 13UL], a.Events.Where(e => e.Kind == "batch").Select(e => e.Token).Order());
        Assert.Equal([2UL, 6UL, 12UL, 16UL], b.Events.Where(e => e.Kind == "batch").Select(e => e.Token).Order());
        Assert.Equal([4UL, 14UL], a.Events.Where(e => e.Kind == "failed").Select(e => e.Token).Order());
        Eventually.True(() => a.Events.Count(e => e.Kind == "confirmed") == 2, "the fsynced publishes are confirmed through the plain method");
        Assert.Equal([5UL, 15UL], a.Events.Where(e => e.Kind == "confirmed").Select(e => e.Token).Order());
        Assert.DoesNotContain(b.Events, e => e.Kind is "confirmed" or "failed");
    }

    [Fact]
    public async Task Idempotent_retry_is_confirmed_with_the_original_offset_and_not_written_again()
    {
        await using var f = await BrokerFixture.StartAsync();
        var sink = new RecordingSink();
        const ulong Producer = 0xABCDEF;

        PublishIdempotent(f.Broker, sink, Producer, 0, "orders", "m0", 1);
        PublishIdempotent(f.Broker, sink, Producer, 1, "orders", "m1", 2);
        await sink.WaitForAsync(2);

        // The retry of sequence 1 (e.g. after a reconnect): same offset, flagged duplicate, nothing appended.
        PublishIdempotent(f.Broker, sink, Producer, 1, "orders", "m1", 3);
        PublishIdempotent(f.Broker, sink, Producer, 2, "orders", "m2", 4);
        var outcomes = await sink.WaitForAsync(4);
        Assert.Equal((1L, true), (outcomes[2].Offset, outcomes[2].Duplicate));
        Assert.Equal((2L, false), (outcomes[3].Offset, outcomes[3].Duplicate));
        Assert.Equal(3, Head(f.Broker, "orders"));

        // Another producer with the same sequences is independent.
        PublishIdempotent(f.Broker, sink, Producer + 1, 1, "orders", "other", 5);
        Assert.Equal((3L, false), ((await sink.WaitForAsync(5))[4].Offset, (await sink.WaitForAsync(5))[4].Duplicate));
    }

    [Fact]
    public async Task A_retry_on_a_fsynced_topic_is_confirmed_even_when_nothing_else_is_published()
    {
        await using var f = await BrokerFixture.StartAsync();
        f.Broker.CreateTopic("ledger", TopicOptions.Default with { Durability = Durability.Fsynced, SegmentBytes = 4 << 20 });
        var sink = new RecordingSink();
        const ulong Producer = 0xFEED;
        PublishIdempotent(f.Broker, sink, Producer, 0, "ledger", "m0", 1);
        await sink.WaitForAsync(1);

        // The CONFIRM was lost with the connection: the client resends, and then the topic stays quiet.
        PublishIdempotent(f.Broker, sink, Producer, 0, "ledger", "m0", 2);
        var outcomes = await sink.WaitForAsync(2);
        Assert.Equal((0L, true), (outcomes[1].Offset, outcomes[1].Duplicate));
        Assert.Equal(1, Head(f.Broker, "ledger"));
    }

    [Fact]
    public async Task Producer_window_survives_a_restart_because_it_lives_in_the_journal()
    {
        await using var f = await BrokerFixture.StartAsync();
        const ulong Producer = 77;
        var sink = new RecordingSink();
        for (var i = 0UL; i < 10; i++)
        {
            PublishIdempotent(f.Broker, sink, Producer, i, i % 2 == 0 ? "even" : "odd", $"m{i}", i);
        }

        await sink.WaitForAsync(10);
        await f.RestartAsync();

        var after = new RecordingSink();
        PublishIdempotent(f.Broker, after, Producer, 7, "odd", "m7", 100);
        PublishIdempotent(f.Broker, after, Producer, 8, "even", "m8", 101);
        PublishIdempotent(f.Broker, after, Producer, 10, "even", "m10", 102);
        var outcomes = await after.WaitForAsync(3);
        Assert.Equal((3L, true), (outcomes[0].Offset, outcomes[0].Duplicate));
        Assert.Equal((4L, true), (outcomes[1].Offset, outcomes[1].Duplicate));
        Assert.Equal((5L, false), (outcomes[2].Offset, outcomes[2].Duplicate));
        Assert.Equal(6, Head(f.Broker, "even"));
        Assert.Equal(5, Head(f.Broker, "odd"));
    }

    [Fact]
    public async Task Sequences_older_than_the_window_are_refused_and_failed_ones_may_be_retried()
    {
        await using var f = await BrokerFixture.StartAsync(o => o with { ProducerWindow = 64, AutoCreateTopics = false });
        f.Broker.CreateTopic("t");
        var sink = new RecordingSink();
        const ulong Producer = 5;

        // Sequence 0 fails (unknown topic): nothing stored, so its retry later is new.
        PublishIdempotent(f.Broker, sink, Producer, 0, "nope", "x", 0);
        for (var i = 1UL; i <= 200; i++)
        {
            PublishIdempotent(f.Broker, sink, Producer, i, "t", $"m{i}", i);
        }

        await sink.WaitForAsync(201);
        var retry = new RecordingSink();
        PublishIdempotent(f.Broker, retry, Producer, 150, "t", "m150", 1000); // inside the window: duplicate
        PublishIdempotent(f.Broker, retry, Producer, 5, "t", "m5", 1001);     // outside: cannot tell, refused
        var outcomes = await retry.WaitForAsync(2);
        Assert.Equal((149L, true), (outcomes[0].Offset, outcomes[0].Duplicate));
        Assert.Equal(BrokerErrorCode.InvalidArgument, outcomes[1].Error);
        Assert.Contains("window", outcomes[1].Reason, StringComparison.Ordinal);
        Assert.Equal(200, Head(f.Broker, "t"));
    }

    /// <summary>
    /// The window's edge, one sequence either side: with the highest stored H, a retry of H − (window − 1) is still a
    /// duplicate (a client with MaxInFlight = window resends that far back) and H − window is refused, not stored
    /// again. 256 also covers the producer's table grown from its initial 64 slots.
    /// </summary>
    [Theory]
    [InlineData(64)]
    [InlineData(256)]
    public async Task A_retry_window_minus_one_behind_the_highest_is_a_duplicate_and_one_further_back_is_refused(int window)
    {
        await using var f = await BrokerFixture.StartAsync(o => o with { ProducerWindow = window });
        var sink = new RecordingSink();
        const ulong Producer = 9;
        var count = (ulong)(3 * window);
        for (var i = 0UL; i < count; i++)
        {
            PublishIdempotent(f.Broker, sink, Producer, i, "edge", $"m{i}", i);
        }

        await sink.WaitForAsync((int)count);
        var highest = count - 1;
        var retry = new RecordingSink();
        PublishIdempotent(f.Broker, retry, Producer, highest - (ulong)window + 1, "edge", "oldest inside", 1);
        PublishIdempotent(f.Broker, retry, Producer, highest - (ulong)window, "edge", "newest outside", 2);
        PublishIdempotent(f.Broker, retry, Producer, highest, "edge", "highest", 3);
        var outcomes = await retry.WaitForAsync(3);

        Assert.Equal((BrokerErrorCode.None, (long)highest - window + 1, true), (outcomes[0].Error, outcomes[0].Offset, outcomes[0].Duplicate));
        Assert.Equal(BrokerErrorCode.InvalidArgument, outcomes[1].Error);
        Assert.Contains("older than the deduplication window", outcomes[1].Reason, StringComparison.Ordinal);
        Assert.Equal((BrokerErrorCode.None, (long)highest, true), (outcomes[2].Error, outcomes[2].Offset, outcomes[2].Duplicate));
        Assert.Equal((long)count, Head(f.Broker, "edge"));
    }

    [Fact]
    public async Task Member_prefetch_can_be_raised()
    {
        await using var f = await BrokerFixture.StartAsync();
        for (var i = 0; i < 3; i++)
        {
            await f.Broker.PublishAsync("jobs", BrokerFixture.Utf8($"j{i}"));
        }

        using var member = f.Broker.JoinGroup("jobs", "g", GroupOptions.Default, prefetch: 1);
        var collector = new Collector();
        Eventually.True(() => member.Fetch(10, ref collector) > 0 || collector.Count > 0, "the first delivery", TimeSpan.FromSeconds(30));
        Assert.Equal(1, collector.Count);
        Assert.Equal(0, member.Fetch(10, ref collector));

        member.AddPrefetch(2);
        Assert.Equal(3, member.Prefetch);
        Eventually.True(
            () =>
            {
                member.Fetch(10, ref collector);
                return collector.Count == 3;
            },
            "both further deliveries after raising the prefetch",
            TimeSpan.FromSeconds(30));
    }

    /// <summary>
    /// One slot, waiting for room: a test publishing more than the input ring holds (16,384) outruns a journaler slowed by
    /// a loaded machine (a flake: the claim failed at once).
    /// </summary>
    internal static PublishClaim BeginOne(Broker broker)
    {
        PublishClaim claim;
        while (!broker.TryBeginPublish(1, out claim))
        {
            Assert.True(broker.WaitForPublishRoomAsync(1).AsTask().Wait(TimeSpan.FromSeconds(30)), "room in the input ring within 30 s");
        }

        return claim;
    }

    internal static long Head(Broker broker, string topic) => broker.GetSnapshot().Topics.Single(t => t.Name == topic).Head;

    internal static ReadOnlySequence<byte> Seq(string s) => new(Encoding.UTF8.GetBytes(s));

    private static void Publish(Broker broker, IPublishConfirmSink sink, (string Topic, string Payload, ulong Token)[] messages, byte[] headers)
    {
        Assert.True(broker.TryBeginPublish(messages.Length, out var claim));
        foreach (var (topic, payload, token) in messages)
        {
            claim.Add(Encoding.UTF8.GetBytes(topic), default, new ReadOnlySequence<byte>(headers), Seq(payload), default, sink, token);
        }

        claim.Commit();
    }

    /// <summary>
    /// <paramref name="producer"/> publishes its sequences <paramref name="from"/> up to <paramref name="to"/> (not
    /// included) to <paramref name="topic"/>, each with payload <paramref name="prefix"/> and its sequence, token <paramref name="tokenBase"/> + sequence.
    /// </summary>
    internal static void PublishRun(Broker broker, IPublishConfirmSink sink, ulong producer, ulong from, ulong to, string prefix, ulong tokenBase = 0, string topic = "t")
    {
        for (var i = from; i < to; i++)
        {
            PublishIdempotent(broker, sink, producer, i, topic, $"{prefix}{i}", tokenBase + i);
        }
    }

    /// <summary>
    /// A first instance of producer <paramref name="id"/>: its epoch, after it stored sequences 0 … <paramref name="stored"/> − 1
    /// in topic "t" (payloads "old0" …), every one confirmed without error.
    /// </summary>
    internal static async Task<ulong> StartOldInstanceAsync(Broker broker, ulong id, int stored)
    {
        var (next, old) = broker.InitProducer(id);
        Assert.Equal(0UL, next);
        var sink = new RecordingSink();
        for (var i = 0UL; i < (ulong)stored; i++)
        {
            PublishIdempotent(broker, sink, id, i, "t", $"old{i}", i, epoch: old);
        }

        Assert.All(await sink.WaitForAsync(stored), o => Assert.Equal(BrokerErrorCode.None, o.Error));
        return old;
    }

    internal static void PublishIdempotent(Broker broker, IPublishConfirmSink sink, ulong producer, ulong sequence, string topic, string payload, ulong token, byte[]? headers = null, ulong epoch = 0)
    {
        var claim = BeginOne(broker);
        claim.Add(Encoding.UTF8.GetBytes(topic), default, headers is null ? default : new ReadOnlySequence<byte>(headers), Seq(payload), new PublishParameters(ProducerId: producer, ProducerSequence: sequence, ProducerEpoch: epoch), sink, token);
        claim.Commit();
    }

    private struct Collector : IMessageHandler
    {
        public int Count;

        public void OnMessage(scoped in MessageView message) => Count++;
    }

    internal sealed record Outcome(ulong Token, long Offset, bool Duplicate, BrokerErrorCode Error, string Reason);

    /// <summary>Records every call with its thread: batch confirmations, batch ends, plain confirmations and failures.</summary>
    internal sealed class BatchSink : IPublishConfirmBatchSink
    {
        public ConcurrentQueue<(string Kind, ulong Token, int Thread)> Events { get; } = new();

        public bool EndedAfter(int confirmations)
        {
            var events = Events.Where(e => e.Kind is "batch" or "end").ToList();
            return events.Count(e => e.Kind == "batch") == confirmations && events[^1].Kind == "end";
        }

        public void OnPublishConfirmedInBatch(ulong token, long offset, bool duplicate) => Events.Enqueue(("batch", token, Environment.CurrentManagedThreadId));

        public void OnConfirmBatchEnd() => Events.Enqueue(("end", 0, Environment.CurrentManagedThreadId));

        public void OnPublishConfirmed(ulong token, long offset, bool duplicate) => Events.Enqueue(("confirmed", token, Environment.CurrentManagedThreadId));

        public void OnPublishFailed(ulong token, BrokerErrorCode code, string reason) => Events.Enqueue(("failed", token, Environment.CurrentManagedThreadId));
    }

    internal sealed class RecordingSink : IPublishConfirmSink
    {
        private readonly ConcurrentQueue<Outcome> _outcomes = new();

        public void OnPublishConfirmed(ulong token, long offset, bool duplicate) => _outcomes.Enqueue(new Outcome(token, offset, duplicate, BrokerErrorCode.None, ""));

        public void OnPublishFailed(ulong token, BrokerErrorCode code, string reason) => _outcomes.Enqueue(new Outcome(token, -1, false, code, reason));

        public Task<List<Outcome>> WaitForAsync(int count)
        {
            Eventually.True(() => _outcomes.Count >= count, $"{count} outcomes", TimeSpan.FromSeconds(30));
            return Task.FromResult<List<Outcome>>([.. _outcomes]);
        }
    }
}
