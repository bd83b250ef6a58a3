using System.Buffers;
using System.Buffers.Binary;
using System.Text;
using FastBroker.Protocol;

namespace FastBroker.ServerTests;

public partial class ServerFuzzTests
{
    /// <summary>A publish the script sent before any frame that closes: it must be confirmed before the close.</summary>
    private sealed record Publish(ulong RequestId, string Topic, string Payload, bool MayFail);

    /// <summary>The bytes one bad connection sends, and what must follow.</summary>
    private sealed class Script
    {
        /// <summary>Request ids from here on belong to frames sent after a frame that must close.</summary>
        public const ulong AfterCloseIds = 1_000_000;

        /// <summary>The request id of a mutated frame (it may be answered).</summary>
        private const ulong MutatedIds = 500_000;

        private readonly ArrayBufferWriter<byte> _out = new();
        private readonly List<string> _steps = [];
        private ulong _nextId = 10;

        public List<Publish> Publishes { get; } = [];

        public List<string> DurableNames { get; } = [];

        public ErrorCode? MustClose { get; private set; }

        public ulong? ClosingRequestId { get; private set; }

        public bool MayClose { get; private set; }

        public bool Abort { get; private set; }

        public ReadOnlyMemory<byte> Bytes => _out.WrittenMemory;

        public override string ToString() => string.Join(", ", _steps);

        public static Script Make(Random rng, int round)
        {
            var s = new Script();
            var features = RawConnection.AllFeatures | ProtocolFeatures.InitProducer | ProtocolFeatures.ProducerEpoch;
            if (rng.Next(8) == 0)
            {
                features &= ~(ProtocolFeatures)(1 << rng.Next(7)); // a feature not asked for: its frames are UnexpectedFrame
            }

            if (rng.Next(10) == 0)
            {
                // Refused before WELCOME: it never takes a handshake slot.
                s.ClosingRequestId = s._nextId;
                switch (rng.Next(3))
                {
                    case 0:
                        s.MustClose = ErrorCode.UnexpectedFrame;
                        s.Add("SUBSCRIBE before HELLO", w => FrameWriter.WriteSubscribe(w, s.Id(), 1, Encoding.UTF8.GetBytes(BadTopic), 1));
                        break;
                    case 1:
                        s.MustClose = ErrorCode.UnsupportedVersion;
                        s.Add("HELLO version 2..3", w => FrameWriter.WriteHello(w, s.Id(), "fuzz"u8, "1"u8, features, minVersion: 2, maxVersion: 3));
                        break;
                    default:
                        s.MustClose = ErrorCode.MalformedFrame;
                        s.Add("HELLO bad magic", w =>
                        {
                            var h = new ArrayBufferWriter<byte>();
                            FrameWriter.WriteHello(h, s.Id(), "fuzz"u8, "1"u8, features);
                            var bytes = h.WrittenSpan.ToArray();
                            bytes[16] ^= 0x20;
                            w.Write(bytes);
                        });
                        break;
                }

                s._nextId = Math.Max(s._nextId, AfterCloseIds);
                s.AddAfterClose(rng);
                return s;
            }

            s.Add($"HELLO {features}", w => FrameWriter.WriteHello(w, s.Id(), "fuzz"u8, "1"u8, features, maxInboundFrameSize: rng.Next(4) == 0 ? (uint)rng.Next(0, 4096) : 0));
            for (var i = rng.Next(3) == 0 ? rng.Next(1, 3) : 0; i > 0; i--)
            {
                s.AddOutOfOrder(rng, round, features); // before the state exists: ACK, COMMIT, CREDIT of nothing
            }

            // The state a connection holds: a durable subscription, a membership with unacked deliveries, an epoch.
            var durable = $"bad.d{rng.Next(3)}";
            s.DurableNames.Add(durable);
            s.Add($"SUBSCRIBE 1 durable {durable}", w => FrameWriter.WriteSubscribe(w, s.Id(), 1, Encoding.UTF8.GetBytes(BadTopic), (uint)rng.Next(1, 20), Protocol.StartKind.Earliest, durableName: Encoding.UTF8.GetBytes(durable)));
            if (Has(features, ProtocolFeatures.WorkQueues))
            {
                s.Add("JOIN_GROUP 2", w => FrameWriter.WriteJoinGroup(w, s.Id(), 2, Encoding.UTF8.GetBytes(BadGroup), Encoding.UTF8.GetBytes(WorkTopic), (uint)rng.Next(1, 5), 60_000, 1000));
            }

            if (Has(features, ProtocolFeatures.InitProducer | ProtocolFeatures.ProducerEpoch))
            {
                s.Add("INIT_PRODUCER epoch 0", w => FrameWriter.WriteInitProducer(w, s.Id(), 900 + (ulong)rng.Next(5), 0));
            }

            for (var i = rng.Next(4); i > 0; i--)
            {
                s.AddPublish(rng, round, rng.Next(2) == 0 ? BadTopic : WorkTopic);
            }

            // Frames out of order and odd names: each is answered (OK, ERROR without CLOSE, CONFIRM) and the connection stays.
            for (var i = rng.Next(6); i > 0; i--)
            {
                s.AddOutOfOrder(rng, round, features);
            }

            switch (rng.Next(10))
            {
                case 0 or 1:
                    s.AddClosing(rng, features);
                    for (var i = rng.Next(3); i > 0; i--)
                    {
                        s._nextId = Math.Max(s._nextId, AfterCloseIds);
                        s.AddAfterClose(rng);
                    }

                    break;
                case 2 or 3 or 4:
                    s.AddMutated(rng, round);
                    break;
                case 5:
                    s.Abort = true;
                    s._steps.Add("abort");
                    break;
                default:
                    break; // well-formed to the end: the half-close ends it without an ERROR
            }

            return s;
        }

        private static bool Has(ProtocolFeatures features, ProtocolFeatures f) => (features & f) == f;

        private ulong Id() => _nextId++;

        private void Add(string step, Action<ArrayBufferWriter<byte>> write)
        {
            _steps.Add(step);
            write(_out);
        }

        private void AddPublish(Random rng, int round, string topic, bool mayFail = false)
        {
            var id = _nextId;
            var payload = $"r{round}-{id}-{rng.Next()}";
            Publishes.Add(new Publish(id, topic, payload, mayFail));
            Add($"PUBLISH {topic}", w => FrameWriter.WritePublish(w, Id(), Encoding.UTF8.GetBytes(topic), Encoding.UTF8.GetBytes(payload)));
        }

        private void AddOutOfOrder(Random rng, int round, ProtocolFeatures features)
        {
            var work = Has(features, ProtocolFeatures.WorkQueues);
            switch (rng.Next(work ? 16 : 10))
            {
                case 0:
                    AddPublish(rng, round, BadTopic);
                    break;
                case 1:
                    Add("SUBSCRIBE 1 again", w => FrameWriter.WriteSubscribe(w, Id(), 1, "fuzz.other"u8, 1));
                    break;
                case 2:
                    var name = OddName(rng);
                    Add($"SUBSCRIBE 3 durable '{Escape(name)}'", w => FrameWriter.WriteSubscribe(w, Id(), 3, Encoding.UTF8.GetBytes(BadTopic), 1, Protocol.StartKind.Latest, durableName: Encoding.UTF8.GetBytes(name)));
                    if (TopicName.IsValid(name))
                    {
                        DurableNames.Add(name);
                    }

                    break;
                case 3:
                    var pattern = OddName(rng);
                    Add($"SUBSCRIBE 4 pattern '{Escape(pattern)}'", w => FrameWriter.WriteSubscribe(w, Id(), 4, Encoding.UTF8.GetBytes(pattern), 1));
                    break;
                case 4:
                    var topic = OddName(rng);
                    var payload = $"odd-{rng.Next()}";
                    Publishes.Add(new Publish(_nextId, topic, payload, MayFail: true));
                    Add($"PUBLISH '{Escape(topic)}'", w => FrameWriter.WritePublish(w, Id(), Encoding.UTF8.GetBytes(topic), Encoding.UTF8.GetBytes(payload)));
                    break;
                case 5:
                    Add("COMMIT 1", w => FrameWriter.WriteCommit(w, Id(), 1, (ulong)rng.Next(0, 1000)));
                    break;
                case 6:
                    Add("COMMIT 1 huge", w => FrameWriter.WriteCommit(w, Id(), 1, ulong.MaxValue - (ulong)rng.Next(2)));
                    break;
                case 7:
                    Add("CREDIT 77 (not open)", w => FrameWriter.WriteCredit(w, Id(), 77, 5));
                    break;
                case 8:
                    Add("UNSUBSCRIBE 1", w => FrameWriter.WriteUnsubscribe(w, Id(), 1));
                    break;
                case 9:
                    var argument = OddName(rng);
                    if (Has(features, ProtocolFeatures.Admin))
                    {
                        Add($"ADMIN TopicStats '{Escape(argument)}'", w => FrameWriter.WriteAdmin(w, Id(), AdminQuery.TopicStats, Encoding.UTF8.GetBytes(argument)));
                    }

                    break;
                case 10:
                    Add("ACK unknown tags", w => FrameWriter.WriteAck(w, Id(), 2, [new DeliveryTag((ulong)rng.Next(100_000), 1), new DeliveryTag(ulong.MaxValue, uint.MaxValue)]));
                    break;
                case 11:
                    Add("ACK on subscription 1", w => FrameWriter.WriteAck(w, Id(), 1, new DeliveryTag(0, 1)));
                    break;
                case 12:
                    Add("NACK unknown", w => FrameWriter.WriteNack(w, Id(), 2, new DeliveryTag((ulong)rng.Next(100_000), 9), requeue: rng.Next(2) == 0, uint.MaxValue, "e"u8));
                    break;
                case 13:
                    Add("JOIN_GROUP 2 again", w => FrameWriter.WriteJoinGroup(w, Id(), 2, Encoding.UTF8.GetBytes(BadGroup), Encoding.UTF8.GetBytes(WorkTopic), 1));
                    break;
                case 14:
                    var group = OddName(rng);
                    Add($"JOIN_GROUP 5 '{Escape(group)}'", w => FrameWriter.WriteJoinGroup(w, Id(), 5, Encoding.UTF8.GetBytes(group), Encoding.UTF8.GetBytes(WorkTopic), uint.MaxValue, uint.MaxValue, ushort.MaxValue));
                    break;
                default:
                    Add("CREDIT 2 max", w => FrameWriter.WriteCredit(w, Id(), 2, uint.MaxValue));
                    break;
            }
        }

        /// <summary>A frame that must close the connection with a known code.</summary>
        private void AddClosing(Random rng, ProtocolFeatures features)
        {
            var id = _nextId;
            ClosingRequestId = id;
            switch (rng.Next(9))
            {
                case 0:
                    MustClose = ErrorCode.UnexpectedFrame;
                    Add("HELLO again", w => FrameWriter.WriteHello(w, Id(), "x"u8, "y"u8, features));
                    break;
                case 1:
                    MustClose = ErrorCode.MalformedFrame;
                    Add("SUBSCRIBE empty pattern", w => Raw(w, FrameType.Subscribe, Id(), Body(b =>
                    {
                        b.Write(new byte[] { 9, 0, 0, 0, 1, 0, 0, 0, (byte)Protocol.StartKind.Latest, (byte)Protocol.StartKind.Latest, 0, 0 });
                        b.Write(new byte[8]);
                        b.Write(new byte[] { 0, 0, 0, 0, 0, 0 });
                    })));
                    break;
                case 2:
                    MustClose = ErrorCode.MalformedFrame;
                    Add("PUBLISH header entry past its block", w => FrameWriter.WritePublish(w, Id(), Encoding.UTF8.GetBytes(BadTopic), "x"u8, headers: [200, (byte)'h', 0xFF, 0xFF]));
                    break;
                case 3:
                    MustClose = ErrorCode.FrameTooLarge;
                    ClosingRequestId = null; // refused from its length field: the request id is not read
                    Add("huge length", w => w.Write(new byte[] { 0xF0, 0xFF, 0xFF, 0x7F, (byte)FrameType.Publish, 0, 0, 0 }));
                    break;
                case 4:
                    MustClose = ErrorCode.MalformedFrame;
                    ClosingRequestId = null;
                    Add("length below 12", w => w.Write(new byte[] { (byte)rng.Next(12), 0, 0, 0 }));
                    break;
                case 5:
                    MustClose = ErrorCode.MalformedFrame;
                    ClosingRequestId = null;
                    Add("unknown type 0x7E", w => Raw(w, (FrameType)0x7E, Id(), []));
                    break;
                case 6:
                    MustClose = ErrorCode.UnexpectedFrame;
                    ClosingRequestId = null;
                    Add("server-only DELIVER", w => Raw(w, FrameType.Deliver, Id(), new byte[40]));
                    break;
                case 7:
                    MustClose = ErrorCode.MalformedFrame;
                    ClosingRequestId = null;
                    Add("PING with flags", w => Raw(w, FrameType.Ping, Id(), [], flags: 0x80));
                    break;
                default:
                    MustClose = ErrorCode.MalformedFrame; // validated whole before the feature is looked at
                    Add("ACK count 0", w => Raw(w, FrameType.Ack, Id(), [2, 0, 0, 0, 0, 0, 0, 0]));
                    break;
            }
        }

        /// <summary>A well-formed frame after the closing one: never acted on.</summary>
        private void AddAfterClose(Random rng)
        {
            switch (rng.Next(3))
            {
                case 0:
                    Add("(after) PING", w => FrameWriter.WritePing(w, Id()));
                    break;
                case 1:
                    Add("(after) PUBLISH", w => FrameWriter.WritePublish(w, Id(), Encoding.UTF8.GetBytes(BadTopic), "after"u8));
                    break;
                default:
                    Add("(after) SUBSCRIBE 9", w => FrameWriter.WriteSubscribe(w, Id(), 9, Encoding.UTF8.GetBytes(BadTopic), 1));
                    break;
            }
        }

        /// <summary>A valid frame mutated: it may work, fail alone, or close (nothing after it is judged).</summary>
        private void AddMutated(Random rng, int round)
        {
            MayClose = true;
            DurableNames.Add("bad.d0");
            var w = new ArrayBufferWriter<byte>();
            var which = rng.Next(6);
            switch (which)
            {
                case 0:
                    FrameWriter.WritePublish(w, MutatedIds, Encoding.UTF8.GetBytes(BadTopic), Encoding.UTF8.GetBytes($"m{round}"), "k"u8, Headers.Of(("h", "v")));
                    break;
                case 1:
                    var b = new PublishBatchWriter(w, 4096, MutatedIds);
                    b.TryAdd(Encoding.UTF8.GetBytes(BadTopic), "one"u8);
                    b.TryAdd(Encoding.UTF8.GetBytes(WorkTopic), "two"u8, headers: Headers.Of(("x", "y")), ttlMs: 1000);
                    b.Complete();
                    break;
                case 2:
                    FrameWriter.WriteSubscribe(w, MutatedIds, 6, "fuzz.>"u8, 10, Protocol.StartKind.Committed, durableName: "bad.d0"u8, filters: Headers.Of(("h", "v")));
                    break;
                case 3:
                    FrameWriter.WriteAck(w, MutatedIds, 2, [new DeliveryTag(0, 1), new DeliveryTag(1, 1)]);
                    break;
                case 4:
                    FrameWriter.WriteCommit(w, MutatedIds, 1, 1, Encoding.UTF8.GetBytes(BadTopic));
                    break;
                default:
                    FrameWriter.WriteJoinGroup(w, MutatedIds, 7, "grp"u8, Encoding.UTF8.GetBytes(WorkTopic), 5, 1000, 3);
                    break;
            }

            var bytes = w.WrittenSpan.ToArray();
            string how;
            switch (rng.Next(5))
            {
                case 0:
                    how = "bit flips";
                    for (var i = 0; i < 1 + rng.Next(3); i++)
                    {
                        bytes[rng.Next(bytes.Length)] ^= (byte)(1 << rng.Next(8));
                    }

                    break;
                case 1:
                    how = "body bit flips";
                    for (var i = 0; i < 1 + rng.Next(3); i++)
                    {
                        bytes[16 + rng.Next(bytes.Length - 16)] ^= (byte)(1 << rng.Next(8));
                    }

                    break;
                case 2:
                    how = "truncated";
                    bytes = bytes[..rng.Next(bytes.Length)];
                    break;
                case 3:
                    how = "length changed";
                    var length = BinaryPrimitives.ReadUInt32LittleEndian(bytes);
                    BinaryPrimitives.WriteUInt32LittleEndian(bytes, rng.Next(2) == 0 ? length + (uint)rng.Next(1, 64) : length - (uint)Math.Min(length, rng.Next(1, 64)));
                    break;
                default:
                    how = "random byte and trailing garbage";
                    bytes[rng.Next(bytes.Length)] = (byte)rng.Next(256);
                    var extra = new byte[rng.Next(1, 32)];
                    rng.NextBytes(extra);
                    bytes = [.. bytes, .. extra];
                    break;
            }

            Add($"mutated frame {which} ({how})", o => o.Write(bytes));
        }

        private static string OddName(Random rng) => rng.Next(12) switch
        {
            0 => "a\0b",
            1 => "../etc",
            2 => "..",
            3 => "a/b",
            4 => "a/../../b",
            5 => ".",
            6 => new string('n', 255),
            7 => "fuzz.bad.\u00e9",
            8 => "fuzz.*",
            9 => "fuzz.>",
            10 => "bad.d0",
            _ => $"fuzz.n{rng.Next(1000)}",
        };

        private static string Escape(string text) => text.Length > 20 ? $"{text[..8]}…({text.Length})" : text.Replace("\0", "\\0", StringComparison.Ordinal);

        private static byte[] Body(Action<ArrayBufferWriter<byte>> write)
        {
            var b = new ArrayBufferWriter<byte>();
            write(b);
            return b.WrittenSpan.ToArray();
        }

        private static void Raw(ArrayBufferWriter<byte> w, FrameType type, ulong requestId, byte[] body, byte flags = 0)
        {
            var frame = new byte[16 + body.Length];
            BinaryPrimitives.WriteUInt32LittleEndian(frame, (uint)(12 + body.Length));
            frame[4] = (byte)type;
            frame[5] = flags;
            BinaryPrimitives.WriteUInt64LittleEndian(frame.AsSpan(8), requestId);
            body.CopyTo(frame, 16);
            w.Write(frame);
        }
    }
}
