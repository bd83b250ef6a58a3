using System.Buffers;
using FastBroker.Protocol;

namespace FastBroker.ProtocolTests;

/// <summary>Every frame type: written by FrameWriter, parsed back whole, byte by byte and in random segments.</summary>
public class RoundTripTests
{
    private static readonly byte[] s_payload = Enumerable.Range(0, 300).Select(i => (byte)i).ToArray();

    private static byte[] Write(Action<ArrayBufferWriter<byte>> write)
    {
        var w = new ArrayBufferWriter<byte>();
        write(w);
        return w.WrittenSpan.ToArray();
    }

    private static byte[] Headers(params (string Name, string Value)[] entries)
    {
        var buffer = new byte[1024];
        var hw = new HeaderBlockWriter(buffer);
        foreach (var (name, value) in entries)
        {
            Assert.True(hw.TryAdd(System.Text.Encoding.UTF8.GetBytes(name), System.Text.Encoding.UTF8.GetBytes(value)));
        }

        return hw.WrittenSpan.ToArray();
    }

    [Fact]
    public void Hello_and_welcome()
    {
        var hello = Write(w => FrameWriter.WriteHello(w, 1, "dotnet-client"u8, "1.2.3"u8, ProtocolFeatures.Batching | ProtocolFeatures.WorkQueues, "sécret"u8, 2_000_000, 1, 3));
        Assert.Equal(["HELLO#1 f=0 v=1-3 feat=6 max=2000000 name=dotnet-client ver=1.2.3 token=73C3A963726574"], Parse.EverySplit(hello, fromClient: true));

        var welcome = Write(w => FrameWriter.WriteWelcome(w, 1, 1, 1 << 20, ProtocolFeatures.Batching, 42, 1000, 5000, "fastbroker"u8, "0.1.0"u8));
        Assert.Equal(["WELCOME#1 f=0 v=1 max=1048576 feat=2 conn=42 subs=1000 hb=5000 name=fastbroker ver=0.1.0"], Parse.EverySplit(welcome, fromClient: false));
    }

    [Fact]
    public void Hello_with_empty_names_and_no_token()
    {
        var hello = Write(w => FrameWriter.WriteHello(w, 0, default, default, ProtocolFeatures.None));
        Assert.Equal(["HELLO#0 f=0 v=1-1 feat=0 max=0 name= ver= token="], Parse.EverySplit(hello, fromClient: true));
    }

    [Fact]
    public void Ping_pong_ok_in_both_directions()
    {
        var bytes = Write(w =>
        {
            FrameWriter.WritePing(w, 7);
            FrameWriter.WritePong(w, 8);
        });
        Assert.Equal(["PING#7 f=0", "PONG#8 f=0"], Parse.EverySplit(bytes, fromClient: true));
        Assert.Equal(["PING#7 f=0", "PONG#8 f=0"], Parse.EverySplit(bytes, fromClient: false));

        var ok = Write(w => FrameWriter.WriteOk(w, 9, ulong.MaxValue));
        Assert.Equal(["OK#9 f=0 value=18446744073709551615"], Parse.EverySplit(ok, fromClient: false));
    }

    [Fact]
    public void Error_with_utf8_and_char_reasons()
    {
        var bytes = Write(w =>
        {
            FrameWriter.WriteError(w, 3, ErrorCode.UnknownTopic, "no topic 'x' — sorry"u8);
            FrameWriter.WriteError(w, 4, ErrorCode.MalformedFrame, "bad frame é".AsSpan(), ErrorFlags.CloseConnection | ErrorFlags.SubscriptionEnded, 12);
        });
        Assert.Equal(
            [
                "ERROR#3 f=0 code=UnknownTopic sub=0 close=False ended=False reason=no topic 'x' — sorry",
                "ERROR#4 f=3 code=MalformedFrame sub=12 close=True ended=True reason=bad frame é",
            ],
            Parse.EverySplit(bytes, fromClient: false));
    }

    [Fact]
    public void Publish_with_every_field()
    {
        var headers = Headers(("fb-reply-to", "_inbox.42"), ("fb-correlation-id", "abc"), ("x", ""));
        var bytes = Write(w => FrameWriter.WritePublish(w, 100, "orders.eu"u8, s_payload, "key-1"u8, headers, Durability.Fsynced, 60_000, 9, 3, PublishFlags.NoConfirm));
        var log = Parse.EverySplit(bytes, fromClient: true);
        Assert.Equal(
            [$"PUBLISH#100 f=1 pid=9 seq=3 ttl=60000 d=Fsynced nc=True topic=orders.eu key=6B65792D31 h={{fb-reply-to=5F696E626F782E3432;fb-correlation-id=616263;x=;}}(3) p={Convert.ToHexString(s_payload)}"],
            log);
        Assert.Equal(bytes.Length, FrameWriter.GetPublishSize(9, 5, headers.Length, s_payload.Length));
    }

    [Fact]
    public void Publish_minimal_and_empty_payload()
    {
        var bytes = Write(w => FrameWriter.WritePublish(w, 1, "t"u8, default));
        Assert.Equal(["PUBLISH#1 f=0 pid=0 seq=0 ttl=0 d=TopicDefault nc=False topic=t key= h={}(0) p="], Parse.EverySplit(bytes, fromClient: true));
    }

    [Fact]
    public void Publish_larger_than_64_KiB_is_written_in_chunks()
    {
        // FrameOutput asks for 64 KiB at most, then copies the rest in chunks of 4 KiB.
        var payload = new byte[100_000];
        new Random(3).NextBytes(payload);
        var stingy = new StingyBufferWriter();
        FrameWriter.WritePublish(stingy, 1, "big"u8, payload);
        Assert.True(stingy.GetSpanCalls > 1);
        var frame = stingy.WrittenBytes;
        Assert.Equal(Write(w => FrameWriter.WritePublish(w, 1, "big"u8, payload)), frame);
        var split = Parse.FromClient(Segments.Random(frame, new Random(4), maxSegment: 4096));
        Assert.False(split.Error.IsError);
        Assert.EndsWith(Convert.ToHexString(payload), Assert.Single(split.Log), StringComparison.Ordinal);
    }

    [Fact]
    public void Writers_give_the_same_bytes_through_a_writer_that_hands_out_tiny_spans()
    {
        // Corpus frames built through ArrayBufferWriter versus the same calls through the stingy writer.
        var headers = Corpus.Headers();
        Action<IBufferWriter<byte>>[] writes =
        [
            w => FrameWriter.WriteHello(w, 1, "c"u8, "1"u8, ProtocolFeatures.Batching, "tok"u8),
            w => FrameWriter.WriteWelcome(w, 1, 1, 1 << 20, ProtocolFeatures.Batching, 5, 100, 1000, "s"u8, "1"u8),
            w => FrameWriter.WriteError(w, 4, ErrorCode.UnknownTopic, "no such topic".AsSpan()),
            w => FrameWriter.WritePublish(w, 4, "orders.eu"u8, "payload"u8, "key"u8, headers, Durability.Fsynced, 10, 1, 2),
            w => FrameWriter.WriteSubscribe(w, 6, 1, "orders.>"u8, 10, StartKind.Offset, 5, "d"u8, StartKind.Latest, headers),
            w => FrameWriter.WriteDeliver(w, 1, 1, 10, 123, "orders.eu"u8, "payload"u8, "key"u8, headers),
            w => FrameWriter.WriteAck(w, 11, 2, [new DeliveryTag(1, 1), new DeliveryTag(2, 1)]),
            w => FrameWriter.WriteNack(w, 12, 2, new DeliveryTag(3, 1), true, 10, "err"u8),
            w => FrameWriter.WriteAdminResult(w, 13, AdminQuery.TopicStats, "{}"u8),
        ];
        foreach (var write in writes)
        {
            var stingy = new StingyBufferWriter();
            write(stingy);
            Assert.Equal(Write(w => write(w)), stingy.WrittenBytes);
        }
    }

    [Fact]
    public void Publish_batch_with_several_topics()
    {
        var w = new ArrayBufferWriter<byte>();
        var batch = new PublishBatchWriter(w, 4096, firstRequestId: 50, Durability.Written, producerId: 7, firstProducerSequence: 1000);
        Assert.True(batch.TryAdd("a.b"u8, "one"u8));
        Assert.True(batch.TryAdd("c"u8, "two"u8, "k"u8, Headers(("h", "v")), ttlMs: 5));
        Assert.True(batch.TryAdd("a.b"u8, default));
        var written = batch.Complete();
        Assert.Equal(written, w.WrittenCount);
        Assert.Equal(
            ["PUBLISH_BATCH#50 f=0 pid=7 seq=1000 d=Written nc=False n=3 [0 ttl=0 topic=a.b key= h={}(0) p=6F6E65] [1 ttl=5 topic=c key=6B h={h=76;}(1) p=74776F] [2 ttl=0 topic=a.b key= h={}(0) p=]"],
            Parse.EverySplit(w.WrittenSpan.ToArray(), fromClient: true));
    }

    [Fact]
    public void Publish_batch_stops_at_capacity_and_an_empty_batch_writes_nothing()
    {
        var w = new ArrayBufferWriter<byte>();
        var batch = new PublishBatchWriter(w, 100, 1);
        Assert.True(batch.TryAdd("t"u8, new byte[40]));
        Assert.False(batch.TryAdd("t"u8, new byte[40])); // 36 + 50 + 50 > 100
        Assert.Equal(1, batch.Count);
        batch.Complete();
        Assert.Single(Parse.EverySplit(w.WrittenSpan.ToArray(), fromClient: true));

        var empty = new ArrayBufferWriter<byte>();
        var none = new PublishBatchWriter(empty, 100, 1);
        Assert.Equal(0, none.Complete());
        Assert.Equal(0, empty.WrittenCount);
    }

    [Fact]
    public void Confirm_merges_consecutive_outcomes_into_ranges()
    {
        var w = new ArrayBufferWriter<byte>();
        var confirm = new ConfirmWriter(w, 1024);
        for (ulong i = 0; i < 1000; i++)
        {
            Assert.True(confirm.TryAdd(10 + i, ErrorCode.None, 500 + i));
        }

        Assert.True(confirm.TryAdd(1010, ErrorCode.MessageTooLarge, 0));
        Assert.True(confirm.TryAdd(1011, ErrorCode.MessageTooLarge, 0));
        Assert.True(confirm.TryAdd(1012, ErrorCode.None, 2000, duplicate: true));
        Assert.True(confirm.TryAdd(1013, ErrorCode.None, 1501)); // offset gap: new range
        Assert.Equal(4, confirm.RangeCount);
        confirm.Complete();
        Assert.Equal(
            ["CONFIRM#0 f=0 n=4 [10+1000 None dup=False @500] [1010+2 MessageTooLarge dup=False @0] [1012+1 None dup=True @2000] [1013+1 None dup=False @1501]"],
            Parse.EverySplit(w.WrittenSpan.ToArray(), fromClient: false));

        var single = Write(w2 => FrameWriter.WriteConfirm(w2, new ConfirmRange(5, 3, ErrorCode.None, false, 77)));
        Assert.Equal(["CONFIRM#0 f=0 n=1 [5+3 None dup=False @77]"], Parse.EverySplit(single, fromClient: false));
    }

    [Fact]
    public void Init_producer()
    {
        var bytes = Write(w => FrameWriter.WriteInitProducer(w, 9, 0x0102030405060708));
        Assert.Equal("14000000" + "13" + "00" + "0000" + "0900000000000000" + "0807060504030201", Convert.ToHexString(bytes));
        Assert.Equal(["INIT_PRODUCER#9 f=0 producer=72623859790382856"], Parse.EverySplit(bytes, fromClient: true));

        // With an epoch (feature ProducerEpoch), and the OK that answers it: next sequence, then the epoch.
        var withEpoch = Write(w => FrameWriter.WriteInitProducer(w, 9, 7, 0x1122334455667788));
        Assert.Equal("1C000000" + "13" + "00" + "0000" + "0900000000000000" + "0700000000000000" + "8877665544332211", Convert.ToHexString(withEpoch));
        Assert.Equal(["INIT_PRODUCER#9 f=0 producer=7 epoch=1234605616436508552"], Parse.EverySplit(withEpoch, fromClient: true));
        var ok = Write(w => FrameWriter.WriteOk(w, 9, 5, 1_796_000_000_000));
        Assert.Equal(["OK#9 f=0 value=5 epoch=1796000000000"], Parse.EverySplit(ok, fromClient: false));
    }

    [Fact]
    public void Subscribe_unsubscribe_credit_commit()
    {
        var bytes = Write(w =>
        {
            FrameWriter.WriteSubscribe(w, 20, 3, "orders.*.new"u8, 64, StartKind.Committed, 0, "billing"u8, StartKind.Earliest, Headers(("region", "eu")));
            FrameWriter.WriteSubscribe(w, 21, 4, "orders.>"u8, 0, StartKind.Timestamp, 1_700_000_000_000_000_000);
            FrameWriter.WriteCredit(w, 0, 3, 32);
            FrameWriter.WriteCommit(w, 22, 3, 12345);
            FrameWriter.WriteCommit(w, 24, 4, 7, "orders.eu"u8);
            FrameWriter.WriteUnsubscribe(w, 23, 4);
        });
        Assert.Equal(
            [
                "SUBSCRIBE#20 f=0 sub=3 credit=64 start=Committed/0 fb=Earliest pattern=orders.*.new durable=billing filters={region=6575;}",
                "SUBSCRIBE#21 f=0 sub=4 credit=0 start=Timestamp/1700000000000000000 fb=Latest pattern=orders.> durable= filters={}",
                "CREDIT#0 f=0 sub=3 credit=32",
                "COMMIT#22 f=0 sub=3 offset=12345 topic=",
                "COMMIT#24 f=0 sub=4 offset=7 topic=orders.eu",
                "UNSUBSCRIBE#23 f=0 sub=4",
            ],
            Parse.EverySplit(bytes, fromClient: true));
    }

    [Fact]
    public void Deliver_from_fields_and_from_a_message_block_are_identical()
    {
        var headers = Headers(("h", "v"));
        var block = new byte[MessageBlock.GetLength(3, headers.Length, s_payload.Length)];
        MessageBlock.Write(block, "key"u8, headers, s_payload);
        var fields = Write(w => FrameWriter.WriteDeliver(w, 5, 2, 77, -1, "orders.eu"u8, s_payload, "key"u8, headers));
        var raw = Write(w => FrameWriter.WriteDeliverBlock(w, 5, 2, 77, -1, "orders.eu"u8, block));
        Assert.Equal(fields, raw);
        Assert.Equal(fields.Length, FrameWriter.GetDeliverSize(9, block.Length));
        Assert.Equal(
            [$"DELIVER#0 f=0 sub=5 tag=77#2 ts=-1 topic=orders.eu key=6B6579 h={{h=76;}}(1) p={Convert.ToHexString(s_payload)}"],
            Parse.EverySplit(fields, fromClient: false));
    }

    [Fact]
    public void Deliver_batch_mixes_field_and_block_entries()
    {
        var block = new byte[MessageBlock.GetLength(0, 0, 2)];
        MessageBlock.Write(block, default, default, "hi"u8);
        var w = new ArrayBufferWriter<byte>();
        var batch = new DeliverBatchWriter(w, 2048, 9);
        Assert.True(batch.TryAdd(1, 10, 1000, "a"u8, "x"u8, "k"u8, Headers(("n", "1"))));
        Assert.True(batch.TryAddBlock(3, 11, 1001, "b.c"u8, block));
        batch.Complete();
        Assert.Equal(
            ["DELIVER_BATCH#0 f=0 sub=9 n=2 [0 tag=10#1 ts=1000 topic=a key=6B h={n=31;}(1) p=78] [1 tag=11#3 ts=1001 topic=b.c key= h={}(0) p=6869]"],
            Parse.EverySplit(w.WrittenSpan.ToArray(), fromClient: false));
    }

    [Fact]
    public void Dropped()
    {
        var bytes = Write(w => FrameWriter.WriteDropped(w, 2, 1000, 5000));
        Assert.Equal(["DROPPED#0 f=0 sub=2 dropped=1000 resume=5000"], Parse.EverySplit(bytes, fromClient: false));
    }

    [Fact]
    public void Join_group_ack_nack()
    {
        var bytes = Write(w =>
        {
            FrameWriter.WriteJoinGroup(w, 30, 8, "workers"u8, "jobs"u8, 10, 30_000, 5);
            FrameWriter.WriteAck(w, 0, 8, new DeliveryTag(100, 1));
            FrameWriter.WriteAck(w, 31, 8, [new DeliveryTag(101, 1), new DeliveryTag(103, 2), new DeliveryTag(ulong.MaxValue, uint.MaxValue)]);
            FrameWriter.WriteNack(w, 32, 8, new DeliveryTag(102, 1), requeue: true, 250, "db down"u8);
            FrameWriter.WriteNack(w, 33, 8, new DeliveryTag(104, 4), requeue: false);
        });
        Assert.Equal(
            [
                "JOIN_GROUP#30 f=0 sub=8 prefetch=10 vis=30000 max=5 group=workers topic=jobs",
                "ACK#0 f=0 sub=8 n=1 100#1",
                "ACK#31 f=0 sub=8 n=3 101#1 103#2 18446744073709551615#4294967295",
                "NACK#32 f=1 sub=8 tag=102#1 requeue=True delay=250 text=db down",
                "NACK#33 f=0 sub=8 tag=104#4 requeue=False delay=0 text=",
            ],
            Parse.EverySplit(bytes, fromClient: true));
    }

    [Fact]
    public void Admin_and_result()
    {
        var admin = Write(w => FrameWriter.WriteAdmin(w, 40, AdminQuery.ListTopics, "orders.>"u8));
        Assert.Equal(["ADMIN#40 f=0 q=ListTopics arg=orders.>"], Parse.EverySplit(admin, fromClient: true));
        var result = Write(w => FrameWriter.WriteAdminResult(w, 40, AdminQuery.ListTopics, "[\"orders.eu\"]"u8));
        Assert.Equal(["ADMIN_RESULT#40 f=0 q=ListTopics fmt=Json result=[\"orders.eu\"]"], Parse.EverySplit(result, fromClient: false));
    }

    [Fact]
    public void Topic_and_header_names_of_255_bytes_straddling_segments()
    {
        var topic = new string('t', 255);
        var name = new string('n', 255);
        var headers = Headers((name, "v"));
        var bytes = Write(w => FrameWriter.WritePublish(w, 1, System.Text.Encoding.UTF8.GetBytes(topic), "p"u8, default, headers));
        Assert.Contains($"topic={topic} ", Parse.EverySplit(bytes, fromClient: true)[0], StringComparison.Ordinal);

        // Multi-byte UTF-8 split between segments must still validate.
        var utf8Topic = string.Concat(Enumerable.Repeat("€ü", 40));
        var bytes2 = Write(w => FrameWriter.WriteSubscribe(w, 1, 1, System.Text.Encoding.UTF8.GetBytes(utf8Topic), 1, durableName: System.Text.Encoding.UTF8.GetBytes(utf8Topic)));
        Assert.Contains($"pattern={utf8Topic} durable={utf8Topic} ", Parse.EverySplit(bytes2, fromClient: true)[0], StringComparison.Ordinal);
    }

    [Fact]
    public void Header_lookup_finds_reply_to_and_correlation_id()
    {
        var headers = Headers(("a", "1"), ("fb-reply-to", "_inbox.7"), ("fb-correlation-id", "42"));
        var bytes = Write(w => FrameWriter.WritePublish(w, 1, "svc.echo"u8, "ping"u8, default, headers));
        var handler = new HeaderProbe();
        var seq = Segments.OneByte(bytes);
        Assert.True(FrameParser.TryParseClientFrame(ref seq, ref handler, Parse.MaxFrame, out _));
        Assert.Equal("_inbox.7", handler.ReplyTo);
        Assert.Equal("42", handler.CorrelationId);
        Assert.True(handler.FoundA);
        Assert.False(handler.FoundMissing);
    }

    [Fact]
    public void Writers_refuse_what_the_wire_cannot_carry()
    {
        var w = new ArrayBufferWriter<byte>();
        Assert.Throws<ArgumentOutOfRangeException>(() => FrameWriter.WritePublish(w, 1, new byte[256], default));
        Assert.Throws<ArgumentException>(() => FrameWriter.WritePublish(w, 1, default, default));
        Assert.Throws<ArgumentOutOfRangeException>(() => FrameWriter.WritePublish(w, 1, "t"u8, default, new byte[65536]));
        Assert.Throws<ArgumentOutOfRangeException>(() => FrameWriter.WriteCredit(w, 1, 0, 1));
        Assert.Throws<ArgumentOutOfRangeException>(() => FrameWriter.WriteCredit(w, 1, 1, 0));
        Assert.Throws<ArgumentOutOfRangeException>(() => FrameWriter.WriteAck(w, 1, 1, ReadOnlySpan<DeliveryTag>.Empty));
        Assert.Equal(0, w.WrittenCount);
    }

    private struct HeaderProbe : IClientFrameHandler
    {
        public string? ReplyTo;
        public string? CorrelationId;
        public bool FoundA;
        public bool FoundMissing;

        public void OnPublish(in FrameHeader header, in PublishFrame frame)
        {
            if (frame.Headers.TryGetValue(ProtocolHeaders.ReplyTo, out var v))
            {
                ReplyTo = System.Text.Encoding.UTF8.GetString(v.ToArray());
            }

            if (frame.Headers.TryGetValue(ProtocolHeaders.CorrelationId, out v))
            {
                CorrelationId = System.Text.Encoding.UTF8.GetString(v.ToArray());
            }

            FoundA = frame.Headers.TryGetValue("a"u8, out _);
            FoundMissing = frame.Headers.TryGetValue("fb-reply"u8, out _);
        }

        public void OnHello(in FrameHeader header, in HelloFrame frame) => throw new NotSupportedException();

        public void OnPing(in FrameHeader header) => throw new NotSupportedException();

        public void OnPong(in FrameHeader header) => throw new NotSupportedException();

        public void OnPublishBatch(in FrameHeader header, in PublishBatchFrame frame) => throw new NotSupportedException();

        public void OnSubscribe(in FrameHeader header, in SubscribeFrame frame) => throw new NotSupportedException();

        public void OnInitProducer(in FrameHeader header, ulong producerId, ulong? epoch) => throw new NotSupportedException();

        public void OnUnsubscribe(in FrameHeader header, uint subscriptionId) => throw new NotSupportedException();

        public void OnCredit(in FrameHeader header, uint subscriptionId, uint credit) => throw new NotSupportedException();

        public void OnCommit(in FrameHeader header, uint subscriptionId, ulong offset, ReadOnlySpan<byte> topic) => throw new NotSupportedException();

        public void OnJoinGroup(in FrameHeader header, in JoinGroupFrame frame) => throw new NotSupportedException();

        public void OnAck(in FrameHeader header, in AckFrame frame) => throw new NotSupportedException();

        public void OnNack(in FrameHeader header, in NackFrame frame) => throw new NotSupportedException();

        public void OnAdmin(in FrameHeader header, in AdminFrame frame) => throw new NotSupportedException();
    }
}
