using System.Text;
using FastBroker.Protocol;
using FastBroker.Server;

namespace FastBroker.ServerTests;

public class PublishTests
{
    [Fact]
    public async Task Single_publishes_are_confirmed_with_their_topic_offsets()
    {
        await using var f = await ServerFixture.StartAsync();
        await using var c = await f.ConnectAsync();
        await c.PublishAsync(1, "orders", "a");
        await c.PublishAsync(2, "orders", "b");
        await c.PublishAsync(3, "other", "c");

        var confirms = await c.ReadConfirmsAsync([1, 2, 3]);

        Assert.Equal((ErrorCode.None, 0UL, false), confirms[1]);
        Assert.Equal((ErrorCode.None, 1UL, false), confirms[2]);
        Assert.Equal((ErrorCode.None, 0UL, false), confirms[3]);
        Assert.Equal(2, f.Broker.GetSnapshot().Topics.Single(t => t.Name == "orders").Head);
    }

    [Fact]
    public async Task A_batch_is_confirmed_in_merged_ranges_with_consecutive_offsets()
    {
        await using var f = await ServerFixture.StartAsync();
        await using var c = await f.ConnectAsync();
        await c.PublishAsync(1, "orders", "first");
        await c.ReadConfirmsAsync([1]);

        const int N = 100;
        await c.SendAsync(w =>
        {
            var batch = new PublishBatchWriter(w, 64 * 1024, firstRequestId: 10);
            for (var i = 0; i < N; i++)
            {
                Assert.True(batch.TryAdd("orders"u8, Encoding.UTF8.GetBytes($"m{i}"), headers: Headers.Of(("i", i.ToString()))));
            }

            batch.Complete();
        });

        var ranges = new List<ConfirmRange>();
        var confirms = await c.ReadConfirmsAsync([.. Enumerable.Range(10, N).Select(i => (ulong)i)], ranges);

        for (var i = 0; i < N; i++)
        {
            Assert.Equal((ErrorCode.None, (ulong)(i + 1), false), confirms[(ulong)(10 + i)]);
        }

        // One claim, one dispatcher batch, one writer pass: the outcomes merge (ConfirmWriter) instead of 100 ranges.
        Assert.True(ranges.Count < N, $"{ranges.Count} ranges for {N} consecutive confirmations");
        Assert.All(ranges, r => Assert.Equal(ErrorCode.None, r.Status));
    }

    [Fact]
    public async Task With_auto_create_off_an_unknown_topic_is_confirmed_with_UnknownTopic_and_the_connection_stays()
    {
        await using var f = await ServerFixture.StartAsync(broker: b => b with { AutoCreateTopics = false });
        f.Broker.CreateTopic("known");
        await using var c = await f.ConnectAsync();
        await c.PublishAsync(1, "unknown", "x");
        await c.PublishAsync(2, "known", "y");
        await c.PublishAsync(3, "bad..name", "z");

        var confirms = await c.ReadConfirmsAsync([1, 2, 3]);

        Assert.Equal(ErrorCode.UnknownTopic, confirms[1].Status);
        Assert.Equal((ErrorCode.None, 0UL, false), confirms[2]);
        Assert.Equal(ErrorCode.InvalidName, confirms[3].Status);
        Assert.Single(await c.RoundTripAsync());
    }

    [Fact]
    public async Task A_publish_carrying_a_header_the_broker_writes_itself_is_confirmed_InvalidArgument_and_the_connection_keeps_working()
    {
        await using var f = await ServerFixture.StartAsync();
        await using var c = await f.ConnectAsync();
        var forged = new byte[16]; // producer 11, sequence 7
        forged[0] = 11;
        forged[8] = 7;

        // Producer 10 forges producer 11's sequence 7; another message forges a TTL; a batch carries one forgery among
        // two good entries. Then producer 11 publishes its real sequence 7, with reserved names publishers may set.
        await c.PublishAsync(1, "orders", "from 10", headers: Headers.Of(("trace", "t"u8.ToArray()), ("fb-producer", forged)), producerId: 10, producerSequence: 0);
        await c.PublishAsync(2, "orders", "ttl", headers: Headers.Of(("fb-expires", new byte[8])));
        await c.SendAsync(w =>
        {
            var batch = new PublishBatchWriter(w, 64 * 1024, firstRequestId: 3);
            Assert.True(batch.TryAdd("orders"u8, "a"u8));
            Assert.True(batch.TryAdd("orders"u8, "b"u8, headers: Headers.Of(("fb-producer", forged))));
            Assert.True(batch.TryAdd("orders"u8, "c"u8));
            batch.Complete();
        });
        await c.PublishAsync(6, "orders", "from 11", headers: Headers.Of(("fb-reply-to", "_inbox.1"), ("fb-priority", "1")), producerId: 11, producerSequence: 7);

        var confirms = await c.ReadConfirmsAsync([1, 2, 3, 4, 5, 6]);
        Assert.Equal(ErrorCode.InvalidArgument, confirms[1].Status);
        Assert.Equal(ErrorCode.InvalidArgument, confirms[2].Status);
        Assert.Equal((ErrorCode.None, 0UL, false), confirms[3]);
        Assert.Equal(ErrorCode.InvalidArgument, confirms[4].Status);
        Assert.Equal((ErrorCode.None, 1UL, false), confirms[5]);
        Assert.Equal((ErrorCode.None, 2UL, false), confirms[6]);
        Assert.Single(await c.RoundTripAsync());
        Assert.Equal(3, f.Broker.GetSnapshot().Topics.Single(t => t.Name == "orders").Head);
        Assert.Empty(f.Failures);
    }

    [Fact]
    public async Task A_topic_the_token_may_not_publish_to_is_confirmed_Forbidden_and_the_connection_stays_open()
    {
        await using var f = await ServerFixture.StartAsync(o => o with { Tokens = [new AccessToken("tok", PublishPatterns: ["allowed.>"])] });
        await using var c = await f.ConnectAsync(token: "tok");
        await c.PublishAsync(1, "allowed.a", "ok");
        await c.PublishAsync(2, "secret.a", "no");
        await c.PublishAsync(3, "allowed.b.c", "ok");
        await c.SendAsync(w =>
        {
            var batch = new PublishBatchWriter(w, 4096, firstRequestId: 4);
            batch.TryAdd("secret"u8, "no"u8);
            batch.TryAdd("allowed.x"u8, "ok"u8);
            batch.Complete();
        });

        var confirms = await c.ReadConfirmsAsync([1, 2, 3, 4, 5]);

        Assert.Equal(ErrorCode.None, confirms[1].Status);
        Assert.Equal(ErrorCode.Forbidden, confirms[2].Status);
        Assert.Equal(ErrorCode.None, confirms[3].Status);
        Assert.Equal(ErrorCode.Forbidden, confirms[4].Status);
        Assert.Equal(ErrorCode.None, confirms[5].Status);
        Assert.False(f.Broker.TopicExists("secret.a"));
        Assert.Single(await c.RoundTripAsync());
    }

    [Fact]
    public async Task No_confirm_publishes_are_stored_silently_but_failures_are_still_reported()
    {
        await using var f = await ServerFixture.StartAsync(broker: b => b with { AutoCreateTopics = false });
        f.Broker.CreateTopic("known");
        await using var c = await f.ConnectAsync();
        await c.PublishAsync(1, "known", "a", PublishFlags.NoConfirm);
        await c.PublishAsync(2, "known", "b", PublishFlags.NoConfirm);
        await c.PublishAsync(3, "unknown", "c", PublishFlags.NoConfirm);
        await c.PublishAsync(4, "known", "d");

        var ranges = new List<ConfirmRange>();
        var confirms = await c.ReadConfirmsAsync([3, 4], ranges);

        Assert.Equal(ErrorCode.UnknownTopic, confirms[3].Status);
        Assert.Equal((ErrorCode.None, 2UL, false), confirms[4]);
        Assert.Equal(2, confirms.Count);
        Assert.Equal(3, f.Broker.GetSnapshot().Topics.Single(t => t.Name == "known").Head);
    }

    [Fact]
    public async Task An_idempotent_retry_is_confirmed_as_a_duplicate_with_the_original_offset()
    {
        await using var f = await ServerFixture.StartAsync();
        await using var c = await f.ConnectAsync();
        await c.PublishAsync(1, "orders", "a", producerId: 77, producerSequence: 0);
        await c.PublishAsync(2, "orders", "b", producerId: 77, producerSequence: 1);
        await c.ReadConfirmsAsync([1, 2]);

        await using var retry = await f.ConnectAsync();
        await retry.PublishAsync(1, "orders", "b", producerId: 77, producerSequence: 1);
        await retry.PublishAsync(2, "orders", "c", producerId: 77, producerSequence: 2);
        var confirms = await retry.ReadConfirmsAsync([1, 2]);

        Assert.Equal((ErrorCode.None, 1UL, true), confirms[1]);
        Assert.Equal((ErrorCode.None, 2UL, false), confirms[2]);
    }

    [Fact]
    public async Task Init_producer_answers_the_next_sequence_of_a_producer_id_and_needs_its_feature()
    {
        await using var f = await ServerFixture.StartAsync();
        await using var c = await f.ConnectAsync(RawConnection.AllFeatures | ProtocolFeatures.InitProducer);
        Assert.Equal(RawConnection.AllFeatures | ProtocolFeatures.InitProducer, c.Welcome!.Features);
        await c.SendAsync(w => FrameWriter.WriteInitProducer(w, 1, 77));
        Assert.Equal((FrameType.Ok, 0UL), await OkAsync(c, 1)); // unknown id: start at 0

        await c.PublishAsync(2, "orders", "a", producerId: 77, producerSequence: 0);
        await c.PublishAsync(3, "orders", "b", producerId: 77, producerSequence: 1);
        await c.ReadConfirmsAsync([2, 3]);
        await c.SendAsync(w => FrameWriter.WriteInitProducer(w, 4, 77));
        Assert.Equal((FrameType.Ok, 2UL), await OkAsync(c, 4));

        await c.SendAsync(w => FrameWriter.WriteInitProducer(w, 5, 0));
        var refused = (await c.ReadUntilAsync(x => x.RequestId == 5))[^1];
        Assert.Equal((FrameType.Error, ErrorCode.InvalidArgument, false), (refused.Type, refused.ErrorCode, refused.CloseConnection));

        // Not granted (not asked for): refused like any ungranted feature, and the connection closes.
        await using var old = await f.ConnectAsync();
        await old.SendAsync(w => FrameWriter.WriteInitProducer(w, 1, 77));
        await old.ExpectClosedWithAsync(ErrorCode.UnexpectedFrame);

        static async Task<(FrameType, ulong)> OkAsync(RawConnection c, ulong requestId)
        {
            var frame = (await c.ReadUntilAsync(x => x.RequestId == requestId))[^1];
            return (frame.Type, frame.OkValue);
        }
    }

    /// <summary>
    /// INIT_PRODUCER with an epoch: a second connection's new instance fences the first connection's, whose next
    /// publish is refused (CONFIRM ProducerFenced) and whose resume is refused (ERROR ProducerFenced, the connection
    /// stays open); the new one's publish with the same sequence is stored, not confirmed as a duplicate.
    /// </summary>
    [Fact]
    public async Task Init_producer_with_an_epoch_fences_the_older_instance_and_needs_its_feature()
    {
        const ProtocolFeatures Features = RawConnection.AllFeatures | ProtocolFeatures.InitProducer | ProtocolFeatures.ProducerEpoch;
        await using var f = await ServerFixture.StartAsync();
        await using var old = await f.ConnectAsync(Features);
        Assert.Equal(Features, old.Welcome!.Features);
        await old.SendAsync(w => FrameWriter.WriteInitProducer(w, 1, 77, 0));
        var first = (await old.ReadUntilAsync(x => x.RequestId == 1))[^1];
        Assert.Equal((FrameType.Ok, 0UL), (first.Type, first.OkValue));
        Assert.NotEqual(0UL, first.OkEpoch);
        await old.PublishAsync(2, "orders", "a", producerId: 77, producerSequence: 0);
        Assert.Equal((ErrorCode.None, 0UL, false), (await old.ReadConfirmsAsync([2]))[2]);

        await using var current = await f.ConnectAsync(Features);
        await current.SendAsync(w => FrameWriter.WriteInitProducer(w, 1, 77, 0));
        var second = (await current.ReadUntilAsync(x => x.RequestId == 1))[^1];
        Assert.Equal((FrameType.Ok, 1UL), (second.Type, second.OkValue));
        Assert.True(second.OkEpoch > first.OkEpoch);

        await old.PublishAsync(3, "orders", "b", producerId: 77, producerSequence: 1);
        Assert.Equal(ErrorCode.ProducerFenced, (await old.ReadConfirmsAsync([3]))[3].Item1);
        await current.PublishAsync(2, "orders", "b'", producerId: 77, producerSequence: 1);
        Assert.Equal((ErrorCode.None, 1UL, false), (await current.ReadConfirmsAsync([2]))[2]);

        await old.SendAsync(w => FrameWriter.WriteInitProducer(w, 4, 77, first.OkEpoch));
        var resumed = (await old.ReadUntilAsync(x => x.RequestId == 4))[^1];
        Assert.Equal((FrameType.Error, ErrorCode.ProducerFenced, false), (resumed.Type, resumed.ErrorCode, resumed.CloseConnection));

        // The epoch form without its feature: refused like any ungranted feature, and the connection closes.
        await using var plain = await f.ConnectAsync(RawConnection.AllFeatures | ProtocolFeatures.InitProducer);
        await plain.SendAsync(w => FrameWriter.WriteInitProducer(w, 1, 77, 0));
        await plain.ExpectClosedWithAsync(ErrorCode.UnexpectedFrame);
    }

    /// <summary>
    /// INIT_PRODUCER whose new epoch cannot be written to <c>producers.epochs</c> (a directory where its temporary file
    /// goes): ERROR StorageError with the reason, the connection stays open and unbound (its publishes with the id carry
    /// no epoch and are stored), and once the file can be written the next INIT_PRODUCER is answered with an epoch.
    /// </summary>
    [Fact]
    public async Task Init_producer_whose_epoch_cannot_be_written_is_an_error_and_the_connection_goes_on()
    {
        const ProtocolFeatures Features = RawConnection.AllFeatures | ProtocolFeatures.InitProducer | ProtocolFeatures.ProducerEpoch;
        await using var f = await ServerFixture.StartAsync();
        await using var c = await f.ConnectAsync(Features);
        var blocker = Path.Combine(f.DataDirectory, "producers.epochs.tmp");
        Directory.CreateDirectory(blocker);
        try
        {
            await c.SendAsync(w => FrameWriter.WriteInitProducer(w, 1, 77, 0));
            var refused = (await c.ReadUntilAsync(x => x.RequestId == 1))[^1];
            Assert.True(
                (refused.Type, refused.ErrorCode, refused.CloseConnection) == (FrameType.Error, ErrorCode.StorageError, false),
                $"INIT_PRODUCER: {refused}");
            Assert.Contains("could not be persisted", refused.ErrorReason, StringComparison.Ordinal);

            await c.PublishAsync(2, "orders", "a", producerId: 77, producerSequence: 0);
            Assert.Equal((ErrorCode.None, 0UL, false), (await c.ReadConfirmsAsync([2]))[2]);
        }
        finally
        {
            Directory.Delete(blocker);
        }

        await c.SendAsync(w => FrameWriter.WriteInitProducer(w, 3, 77, 0));
        var answered = (await c.ReadUntilAsync(x => x.RequestId == 3))[^1];
        Assert.True((answered.Type, answered.OkValue) == (FrameType.Ok, 1UL), $"INIT_PRODUCER once the file can be written: {answered}");
        Assert.NotEqual(0UL, answered.OkEpoch);
        await c.PublishAsync(4, "orders", "b", producerId: 77, producerSequence: 1);
        Assert.Equal((ErrorCode.None, 1UL, false), (await c.ReadConfirmsAsync([4]))[4]);
    }

    [Fact]
    public async Task Many_pipelined_publishes_are_all_confirmed_in_order()
    {
        await using var f = await ServerFixture.StartAsync(broker: b => b with { InputRingSize = 64 });
        await using var c = await f.ConnectAsync();
        const int N = 3_000;
        var w = new System.Buffers.ArrayBufferWriter<byte>();
        for (var i = 1; i <= N; i++)
        {
            FrameWriter.WritePublish(w, (ulong)i, "flood"u8, Encoding.UTF8.GetBytes($"m{i}"));
        }

        // A 64-slot ring and one big write: the server must stop reading and resume (back-pressure), losing nothing.
        var send = c.SendRawAsync(w.WrittenMemory);
        var confirms = await c.ReadConfirmsAsync([.. Enumerable.Range(1, N).Select(i => (ulong)i)]);
        await send;

        for (var i = 1; i <= N; i++)
        {
            Assert.Equal((ErrorCode.None, (ulong)(i - 1), false), confirms[(ulong)i]);
        }
    }

    [Fact]
    public async Task A_batch_larger_than_the_claim_limit_is_split_and_confirmed_whole_under_back_pressure()
    {
        await using var f = await ServerFixture.StartAsync(broker: b => b with { InputRingSize = 64 });
        Assert.True(f.Broker.MaxPublishClaim < 100);
        await using var c = await f.ConnectAsync();
        const int Batches = 5;
        const int PerBatch = 300;
        var w = new System.Buffers.ArrayBufferWriter<byte>();
        for (var b = 0; b < Batches; b++)
        {
            var batch = new PublishBatchWriter(w, 64 * 1024, firstRequestId: (ulong)(1 + (b * PerBatch)));
            for (var i = 0; i < PerBatch; i++)
            {
                Assert.True(batch.TryAdd(b % 2 == 0 ? "even"u8 : "odd"u8, Encoding.UTF8.GetBytes($"{b}.{i}")));
            }

            batch.Complete();
        }

        await c.SendRawAsync(w.WrittenMemory);
        var confirms = await c.ReadConfirmsAsync([.. Enumerable.Range(1, Batches * PerBatch).Select(i => (ulong)i)]);

        Assert.All(confirms.Values, v => Assert.Equal(ErrorCode.None, v.Status));
        var snapshot = f.Broker.GetSnapshot();
        Assert.Equal(3 * PerBatch, snapshot.Topics.Single(t => t.Name == "even").Head);
        Assert.Equal(2 * PerBatch, snapshot.Topics.Single(t => t.Name == "odd").Head);
        Assert.Equal((ErrorCode.None, (ulong)PerBatch, false), confirms[(ulong)((2 * PerBatch) + 1)]);
    }
}
