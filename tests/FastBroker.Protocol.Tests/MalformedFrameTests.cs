using System.Buffers;
using FastBroker.Protocol;
using FastBroker.Protocol.Internal;

namespace FastBroker.ProtocolTests;

/// <summary>Every malformed case yields its documented code, reason and field (docs/protocol.md, "Validation"), split or not.</summary>
public class MalformedFrameTests
{
    private const int Max = 4096;

    private static readonly byte[] s_badUtf8 = [0x61, 0xC3, 0x28];

    public sealed record Case(byte[] Bytes, bool FromClient, ErrorCode Code, string Reason, string? Field = null, int Index = -1);

    private static Dictionary<string, Case> Cases() => new()
    {
        ["length below header"] = new(Len(11), true, ErrorCode.MalformedFrame, Reasons.LengthTooSmall),
        ["length above max frame size"] = new(Len(Max - 3), true, ErrorCode.FrameTooLarge, Reasons.LengthTooLarge),
        ["length above max (server side)"] = new(Len(uint.MaxValue), false, ErrorCode.FrameTooLarge, Reasons.LengthTooLarge),
        ["unknown type"] = new(Bytes.Frame(0x7F, []), true, ErrorCode.MalformedFrame, Reasons.UnknownType),
        ["type zero"] = new(Bytes.Frame(0x00, []), false, ErrorCode.MalformedFrame, Reasons.UnknownType),
        ["DELIVER sent by a client"] = new(Bytes.Frame(FrameType.Deliver, new Bytes()), true, ErrorCode.UnexpectedFrame, Reasons.WrongDirection),
        ["PUBLISH sent by a server"] = new(Bytes.Frame(FrameType.Publish, new Bytes()), false, ErrorCode.UnexpectedFrame, Reasons.WrongDirection),
        ["HELLO sent by a server"] = new(Bytes.Frame(FrameType.Hello, new Bytes()), false, ErrorCode.UnexpectedFrame, Reasons.WrongDirection),
        ["undefined PUBLISH flag"] = new(Bytes.Frame(FrameType.Publish, new Bytes(), flags: 2), true, ErrorCode.MalformedFrame, Reasons.UnknownFlags),
        ["flag on CREDIT"] = new(Bytes.Frame(FrameType.Credit, new Bytes().U32(1).U32(1), flags: 1), true, ErrorCode.MalformedFrame, Reasons.UnknownFlags),
        ["reserved header bytes"] = new(Reserved(Bytes.Frame(FrameType.Ping, new Bytes())), true, ErrorCode.MalformedFrame, Reasons.ReservedHeader),
        ["PING with a body"] = new(Bytes.Frame(FrameType.Ping, new Bytes().U8(0)), true, ErrorCode.MalformedFrame, Reasons.TrailingBytes),
        ["HELLO bad magic"] = new(Bytes.Frame(FrameType.Hello, new Bytes().U32(0x4B524247)), true, ErrorCode.MalformedFrame, Reasons.BadMagic, "magic"),
        ["HELLO truncated magic"] = new(Bytes.Frame(FrameType.Hello, new Bytes().U16(1)), true, ErrorCode.MalformedFrame, Reasons.FieldOverruns, "magic"),
        ["HELLO truncated minVersion"] = new(Bytes.Frame(FrameType.Hello, new Bytes().U32(ProtocolConstants.Magic).U8(1)), true, ErrorCode.MalformedFrame, Reasons.FieldOverruns, "minVersion"),
        ["HELLO version range"] = new(Bytes.Frame(FrameType.Hello, new Bytes().U32(ProtocolConstants.Magic).U16(3).U16(2)), true, ErrorCode.MalformedFrame, Reasons.VersionRange, "maxVersion"),
        ["HELLO token overruns"] = new(Bytes.Frame(FrameType.Hello, new Bytes().U32(ProtocolConstants.Magic).U16(1).U16(1).U64(0).U32(0).U8(0).U8(0).U16(5).U8(1)), true, ErrorCode.MalformedFrame, Reasons.FieldOverruns, "authToken"),
        ["HELLO client name bad UTF-8"] = new(Bytes.Frame(FrameType.Hello, new Bytes().U32(ProtocolConstants.Magic).U16(1).U16(1).U64(0).U32(0).U8(3).Raw(s_badUtf8).U8(0).U16(0)), true, ErrorCode.MalformedFrame, Reasons.InvalidUtf8, "clientName"),
        ["PUBLISH truncated fixed part"] = new(Bytes.Frame(FrameType.Publish, new Bytes().U64(0).U32(0)), true, ErrorCode.MalformedFrame, Reasons.FieldOverruns, "producerSequence"),
        ["PUBLISH undefined durability"] = new(Bytes.Frame(FrameType.Publish, Bytes.PublishPrefix(6).Str8("t").Message()), true, ErrorCode.MalformedFrame, Reasons.UndefinedValue, "durability"),
        ["PUBLISH topic overruns"] = new(Bytes.Frame(FrameType.Publish, Bytes.PublishPrefix().U8(10).Raw(0x61, 0x62)), true, ErrorCode.MalformedFrame, Reasons.FieldOverruns, "topic"),
        ["PUBLISH empty topic"] = new(Bytes.Frame(FrameType.Publish, Bytes.PublishPrefix().U8(0).Message()), true, ErrorCode.MalformedFrame, Reasons.Empty, "topic"),
        ["PUBLISH topic bad UTF-8"] = new(Bytes.Frame(FrameType.Publish, Bytes.PublishPrefix().U8(3).Raw(s_badUtf8).Message()), true, ErrorCode.MalformedFrame, Reasons.InvalidUtf8, "topic"),
        ["PUBLISH key overruns"] = new(Bytes.Frame(FrameType.Publish, Bytes.PublishPrefix().Str8("t").U16(100)), true, ErrorCode.MalformedFrame, Reasons.FieldOverruns, "key"),
        ["PUBLISH headers overrun"] = new(Bytes.Frame(FrameType.Publish, Bytes.PublishPrefix().Str8("t").U16(0).U32(50)), true, ErrorCode.MalformedFrame, Reasons.FieldOverruns, "headers"),
        ["PUBLISH header entry overruns its block"] = new(Bytes.Frame(FrameType.Publish, Bytes.PublishPrefix().Str8("t").Message(headers: [1, 0x61, 9, 0])), true, ErrorCode.MalformedFrame, Reasons.HeaderEntryOverruns, "headers"),
        ["PUBLISH header name empty"] = new(Bytes.Frame(FrameType.Publish, Bytes.PublishPrefix().Str8("t").Message(headers: [0, 0, 0])), true, ErrorCode.MalformedFrame, Reasons.Empty, "headers"),
        ["PUBLISH header name bad UTF-8"] = new(Bytes.Frame(FrameType.Publish, Bytes.PublishPrefix().Str8("t").Message(headers: [3, .. s_badUtf8, 0, 0])), true, ErrorCode.MalformedFrame, Reasons.InvalidUtf8, "headers"),
        ["PUBLISH payload overruns"] = new(Bytes.Frame(FrameType.Publish, Bytes.PublishPrefix().Str8("t").U16(0).U32(0).U32(uint.MaxValue)), true, ErrorCode.MalformedFrame, Reasons.FieldOverruns, "payload"),
        ["PUBLISH trailing bytes"] = new(Bytes.Frame(FrameType.Publish, Bytes.PublishPrefix().Str8("t").Message().U8(0)), true, ErrorCode.MalformedFrame, Reasons.TrailingBytes),
        ["PUBLISH_BATCH count zero"] = new(Bytes.Frame(FrameType.PublishBatch, new Bytes().U64(0).U64(0).U8(0).U8(0).U16(0)), true, ErrorCode.MalformedFrame, Reasons.ZeroCount, "count"),
        ["PUBLISH_BATCH reserved"] = new(Bytes.Frame(FrameType.PublishBatch, new Bytes().U64(0).U64(0).U8(0).U8(1).U16(1)), true, ErrorCode.MalformedFrame, Reasons.ReservedField, "reserved"),
        ["PUBLISH_BATCH second entry bad"] = new(Bytes.Frame(FrameType.PublishBatch, new Bytes().U64(0).U64(0).U8(0).U8(0).U16(2).U32(0).Str8("a").Message().U32(0).U8(0).Message()), true, ErrorCode.MalformedFrame, Reasons.Empty, "topic", 1),
        ["PUBLISH_BATCH fewer entries than count"] = new(Bytes.Frame(FrameType.PublishBatch, new Bytes().U64(0).U64(0).U8(0).U8(0).U16(2).U32(0).Str8("a").Message()), true, ErrorCode.MalformedFrame, Reasons.FieldOverruns, "ttlMs", 1),
        ["PUBLISH_BATCH more bytes than count"] = new(Bytes.Frame(FrameType.PublishBatch, new Bytes().U64(0).U64(0).U8(0).U8(0).U16(1).U32(0).Str8("a").Message().U32(0)), true, ErrorCode.MalformedFrame, Reasons.TrailingBytes),
        ["SUBSCRIBE subscription id zero"] = new(Bytes.Frame(FrameType.Subscribe, new Bytes().U32(0)), true, ErrorCode.MalformedFrame, Reasons.ZeroSubscriptionId, "subscriptionId"),
        ["SUBSCRIBE undefined start"] = new(Bytes.Frame(FrameType.Subscribe, new Bytes().U32(1).U32(0).U8(5)), true, ErrorCode.MalformedFrame, Reasons.UndefinedValue, "startKind"),
        ["SUBSCRIBE undefined fallback"] = new(Bytes.Frame(FrameType.Subscribe, new Bytes().U32(1).U32(0).U8(4).U8(2)), true, ErrorCode.MalformedFrame, Reasons.UndefinedValue, "fallbackKind"),
        ["SUBSCRIBE empty pattern"] = new(Bytes.Frame(FrameType.Subscribe, new Bytes().U32(1).U32(0).U8(0).U8(0).U16(0).U64(0).U8(0)), true, ErrorCode.MalformedFrame, Reasons.Empty, "pattern"),
        ["SUBSCRIBE filters overrun"] = new(Bytes.Frame(FrameType.Subscribe, new Bytes().U32(1).U32(0).U8(0).U8(0).U16(0).U64(0).Str8("a").U8(0).U32(4)), true, ErrorCode.MalformedFrame, Reasons.FieldOverruns, "filters"),
        ["INIT_PRODUCER truncated"] = new(Bytes.Frame(FrameType.InitProducer, new Bytes().U32(1)), true, ErrorCode.MalformedFrame, Reasons.FieldOverruns, "producerId"),
        ["INIT_PRODUCER truncated epoch"] = new(Bytes.Frame(FrameType.InitProducer, new Bytes().U64(1).U8(0)), true, ErrorCode.MalformedFrame, Reasons.FieldOverruns, "epoch"),
        ["INIT_PRODUCER trailing bytes"] = new(Bytes.Frame(FrameType.InitProducer, new Bytes().U64(1).U64(2).U8(0)), true, ErrorCode.MalformedFrame, Reasons.TrailingBytes),
        ["OK truncated epoch"] = new(Bytes.Frame(FrameType.Ok, new Bytes().U64(1).U32(2)), false, ErrorCode.MalformedFrame, Reasons.FieldOverruns, "epoch"),
        ["INIT_PRODUCER from a server"] = new(Bytes.Frame(FrameType.InitProducer, new Bytes().U64(1)), false, ErrorCode.UnexpectedFrame, Reasons.WrongDirection),
        ["UNSUBSCRIBE truncated"] = new(Bytes.Frame(FrameType.Unsubscribe, new Bytes().U16(1)), true, ErrorCode.MalformedFrame, Reasons.FieldOverruns, "subscriptionId"),
        ["CREDIT zero"] = new(Bytes.Frame(FrameType.Credit, new Bytes().U32(1).U32(0)), true, ErrorCode.MalformedFrame, Reasons.ZeroCredit, "credit"),
        ["COMMIT reserved"] = new(Bytes.Frame(FrameType.Commit, new Bytes().U32(1).U32(1).U64(0).U8(0)), true, ErrorCode.MalformedFrame, Reasons.ReservedField, "reserved"),
        ["COMMIT without topic"] = new(Bytes.Frame(FrameType.Commit, new Bytes().U32(1).U32(0).U64(0)), true, ErrorCode.MalformedFrame, Reasons.FieldOverruns, "topic"),
        ["JOIN_GROUP prefetch zero"] = new(Bytes.Frame(FrameType.JoinGroup, new Bytes().U32(1).U32(0)), true, ErrorCode.MalformedFrame, Reasons.ZeroCredit, "prefetch"),
        ["JOIN_GROUP empty topic"] = new(Bytes.Frame(FrameType.JoinGroup, new Bytes().U32(1).U32(1).U32(0).U16(0).U16(0).Str8("g").U8(0)), true, ErrorCode.MalformedFrame, Reasons.Empty, "topic"),
        ["ACK count zero"] = new(Bytes.Frame(FrameType.Ack, new Bytes().U32(1).U16(0).U16(0)), true, ErrorCode.MalformedFrame, Reasons.ZeroCount, "count"),
        ["ACK delivery count zero"] = new(Bytes.Frame(FrameType.Ack, new Bytes().U32(1).U16(1).U16(0).U64(5).U32(0)), true, ErrorCode.MalformedFrame, Reasons.ZeroDeliveryCount, "tags.deliveryCount"),
        ["ACK fewer tags than count"] = new(Bytes.Frame(FrameType.Ack, new Bytes().U32(1).U16(2).U16(0).U64(5).U32(1)), true, ErrorCode.MalformedFrame, Reasons.FieldOverruns, "tags.offset"),
        ["NACK delivery count zero"] = new(Bytes.Frame(FrameType.Nack, new Bytes().U32(1).U32(0)), true, ErrorCode.MalformedFrame, Reasons.ZeroDeliveryCount, "deliveryCount"),
        ["NACK error text bad UTF-8"] = new(Bytes.Frame(FrameType.Nack, new Bytes().U32(1).U32(1).U64(0).U32(0).U16(3).Raw(s_badUtf8)), true, ErrorCode.MalformedFrame, Reasons.InvalidUtf8, "errorText"),
        ["ADMIN undefined query"] = new(Bytes.Frame(FrameType.Admin, new Bytes().U8(0).U8(0)), true, ErrorCode.MalformedFrame, Reasons.UndefinedValue, "query"),
        ["WELCOME truncated"] = new(Bytes.Frame(FrameType.Welcome, new Bytes().U16(1).U16(0).U32(0)), false, ErrorCode.MalformedFrame, Reasons.FieldOverruns, "features"),
        ["OK truncated"] = new(Bytes.Frame(FrameType.Ok, new Bytes().U32(1)), false, ErrorCode.MalformedFrame, Reasons.FieldOverruns, "value"),
        ["ERROR reason bad UTF-8"] = new(Bytes.Frame(FrameType.Error, new Bytes().U16(1).U16(0).U32(0).U16(3).Raw(s_badUtf8)), false, ErrorCode.MalformedFrame, Reasons.InvalidUtf8, "reason"),
        ["ERROR undefined flag"] = new(Bytes.Frame(FrameType.Error, new Bytes(), flags: 4), false, ErrorCode.MalformedFrame, Reasons.UnknownFlags),
        ["CONFIRM zero ranges"] = new(Bytes.Frame(FrameType.Confirm, new Bytes().U16(0).U16(0)), false, ErrorCode.MalformedFrame, Reasons.ZeroCount, "rangeCount"),
        ["CONFIRM range count zero"] = new(Bytes.Frame(FrameType.Confirm, new Bytes().U16(1).U16(0).U64(1).U32(0)), false, ErrorCode.MalformedFrame, Reasons.ZeroCount, "ranges.count"),
        ["CONFIRM range flags"] = new(Bytes.Frame(FrameType.Confirm, new Bytes().U16(1).U16(0).U64(1).U32(1).U16(0).U16(2).U64(0)), false, ErrorCode.MalformedFrame, Reasons.UnknownFlags, "ranges.flags"),
        ["DELIVER delivery count zero"] = new(Bytes.Frame(FrameType.Deliver, new Bytes().U32(1).U32(0)), false, ErrorCode.MalformedFrame, Reasons.ZeroDeliveryCount, "deliveryCount"),
        ["DELIVER subscription id zero"] = new(Bytes.Frame(FrameType.Deliver, new Bytes().U32(0)), false, ErrorCode.MalformedFrame, Reasons.ZeroSubscriptionId, "subscriptionId"),
        ["DELIVER_BATCH first entry payload overruns"] = new(Bytes.Frame(FrameType.DeliverBatch, new Bytes().U32(1).U16(1).U16(0).U32(1).U64(0).U64(0).Str8("t").U16(0).U32(0).U32(9)), false, ErrorCode.MalformedFrame, Reasons.FieldOverruns, "payload", 0),
        ["DROPPED subscription id zero"] = new(Bytes.Frame(FrameType.Dropped, new Bytes().U32(0)), false, ErrorCode.MalformedFrame, Reasons.ZeroSubscriptionId, "subscriptionId"),
        ["ADMIN_RESULT undefined format"] = new(Bytes.Frame(FrameType.AdminResult, new Bytes().U8(1).U8(2)), false, ErrorCode.MalformedFrame, Reasons.UndefinedValue, "format"),
    };

    public static TheoryData<string> Names() => [.. Cases().Keys];

    private static byte[] Len(uint length)
    {
        var b = new byte[4];
        System.Buffers.Binary.BinaryPrimitives.WriteUInt32LittleEndian(b, length);
        return b;
    }

    private static byte[] Reserved(byte[] frame)
    {
        frame[7] = 1;
        return frame;
    }

    [Theory]
    [MemberData(nameof(Names))]
    public void Malformed_frame_gets_its_documented_error(string name)
    {
        var c = Cases()[name];
        foreach (var buffer in new[] { Segments.Whole(c.Bytes), Segments.OneByte(c.Bytes), Segments.Random(c.Bytes, new Random(name.Length)) })
        {
            var result = c.FromClient ? Parse.FromClient(buffer, Max) : Parse.FromServer(buffer, Max);
            Assert.Empty(result.Log); // nothing reached the handler, not even part of a batch
            Assert.Equal(c.Code, result.Error.Code);
            Assert.Equal(c.Reason, result.Error.Reason);
            Assert.Equal(c.Field, result.Error.Field);
            Assert.Equal(c.Index, result.Error.Index);
            Assert.Equal(c.Bytes.Length, result.Remaining); // not consumed
            if (c.Bytes.Length >= ProtocolConstants.HeaderSize && c.Code == ErrorCode.MalformedFrame && c.Field is not null)
            {
                Assert.Equal(77UL, result.Error.RequestId); // so the ERROR can name the request
            }

            Assert.False(string.IsNullOrEmpty(result.Error.ToString()));
        }
    }

    [Fact]
    public void Oversized_frame_is_refused_from_its_first_four_bytes()
    {
        var frame = Bytes.Frame(FrameType.Publish, Bytes.PublishPrefix().Str8("t").Message(payload: new byte[Max]));
        var result = Parse.FromClient(Segments.Whole(frame[..4]), Max);
        Assert.Equal(ErrorCode.FrameTooLarge, result.Error.Code);
    }

    [Fact]
    public void Wrong_direction_is_refused_from_its_first_five_bytes()
    {
        var frame = Bytes.Frame(FrameType.Deliver, new Bytes().U32(1));
        var result = Parse.FromClient(Segments.Whole(frame[..5]), Max);
        Assert.Equal(ErrorCode.UnexpectedFrame, result.Error.Code);
        Assert.Equal(FrameType.Deliver, result.Error.Type);
    }

    [Fact]
    public void Every_proper_prefix_of_a_valid_frame_needs_more_data()
    {
        var w = new ArrayBufferWriter<byte>();
        FrameWriter.WritePublish(w, 1, "orders"u8, "payload"u8, "k"u8);
        var frame = w.WrittenSpan.ToArray();
        for (var n = 0; n < frame.Length; n++)
        {
            var result = Parse.FromClient(Segments.Random(frame[..n], new Random(n)), Max);
            Assert.False(result.Error.IsError, $"prefix {n}: {result.Error}");
            Assert.Empty(result.Log);
            Assert.Equal(n, result.Remaining);
        }
    }

    [Fact]
    public void Error_text_names_frame_field_and_entry()
    {
        var c = Cases()["PUBLISH_BATCH second entry bad"];
        var result = Parse.FromClient(Segments.Whole(c.Bytes), Max);
        Assert.Equal("PUBLISH_BATCH: entry 1, field 'topic': must not be empty", result.Error.ToString());
    }
}
