using System.Buffers;
using System.Buffers.Binary;
using FastBroker.Protocol.Internal;

namespace FastBroker.Protocol;

/// <summary>
/// Parses one frame at a time from a connection buffer into a struct handler, without allocating.
/// </summary>
/// <remarks>
/// Use from a PipeReader loop: call until it returns false; then if <c>error.IsError</c> send an ERROR
/// (<c>error.Code</c>, <c>error.ToString()</c>, request id <c>error.RequestId</c>) and close, else
/// <c>AdvanceTo(buffer.Start, buffer.End)</c> and read more. On true, <c>buffer</c> was advanced
/// past the frame. The header is checked as soon as its bytes arrive, so an oversized, unknown or
/// wrong-direction frame is refused before its body is buffered. A body is validated completely before the
/// handler sees any of it: a batch is delivered whole or not at all.
/// </remarks>
public static partial class FrameParser
{
    // Two str8 names at most are returned at once (HELLO, SUBSCRIBE, JOIN_GROUP), each at most 255 bytes: 510
    // bytes of stack, copied into only when a name straddles buffer segments.
    private const int ScratchSize = 2 * ProtocolConstants.MaxNameLength;

    /// <summary>Parses one frame sent by a client (the server's side).</summary>
    /// <returns>True when a frame was parsed, handed to <paramref name="handler"/> and consumed; false when more data is needed (<c>error.IsError</c> false) or the input is bad.</returns>
    public static bool TryParseClientFrame<THandler>(ref ReadOnlySequence<byte> buffer, ref THandler handler, int maxFrameSize, out FrameError error)
        where THandler : struct, IClientFrameHandler
    {
        if (!TryReadHeader(buffer, maxFrameSize, fromClient: true, out var header, out error))
        {
            return false;
        }

        var body = buffer.Slice(ProtocolConstants.HeaderSize, header.BodyLength);
        if (header.Type == FrameType.PublishBatch && !body.IsSingleSegment)
        {
            return ParseCopied(ref buffer, body, header, ref handler, ParsePublishBatch, out error);
        }

        var cursor = new FieldCursor(body, stackalloc byte[ScratchSize]);
        var index = -1;
        var ok = header.Type switch
        {
            FrameType.Hello => ParseHello(ref cursor, header, ref handler),
            FrameType.Ping => ParsePing(ref cursor, header, ref handler),
            FrameType.Pong => ParsePong(ref cursor, header, ref handler),
            FrameType.Publish => ParsePublish(ref cursor, header, ref handler),
            FrameType.PublishBatch => ParsePublishBatch(ref cursor, header, ref handler, out index),
            FrameType.InitProducer => ParseInitProducer(ref cursor, header, ref handler),
            FrameType.Subscribe => ParseSubscribe(ref cursor, header, ref handler),
            FrameType.Unsubscribe => ParseUnsubscribe(ref cursor, header, ref handler),
            FrameType.Credit => ParseCredit(ref cursor, header, ref handler),
            FrameType.Commit => ParseCommit(ref cursor, header, ref handler),
            FrameType.JoinGroup => ParseJoinGroup(ref cursor, header, ref handler),
            FrameType.Ack => ParseAck(ref cursor, header, ref handler),
            FrameType.Nack => ParseNack(ref cursor, header, ref handler),
            FrameType.Admin => ParseAdmin(ref cursor, header, ref handler),
            _ => cursor.Fail(null, Reasons.UnknownType),
        };

        return Finish(ok, ref buffer, body, header, cursor, index, out error);
    }

    /// <summary>Parses one frame sent by a server (the client's side).</summary>
    /// <returns>True when a frame was parsed, handed to <paramref name="handler"/> and consumed; false when more data is needed (<c>error.IsError</c> false) or the input is bad.</returns>
    public static bool TryParseServerFrame<THandler>(ref ReadOnlySequence<byte> buffer, ref THandler handler, int maxFrameSize, out FrameError error)
        where THandler : struct, IServerFrameHandler
    {
        if (!TryReadHeader(buffer, maxFrameSize, fromClient: false, out var header, out error))
        {
            return false;
        }

        var body = buffer.Slice(ProtocolConstants.HeaderSize, header.BodyLength);
        if (header.Type == FrameType.DeliverBatch && !body.IsSingleSegment)
        {
            return ParseCopied(ref buffer, body, header, ref handler, ParseDeliverBatch, out error);
        }

        var cursor = new FieldCursor(body, stackalloc byte[ScratchSize]);
        var index = -1;
        var ok = header.Type switch
        {
            FrameType.Welcome => ParseWelcome(ref cursor, header, ref handler),
            FrameType.Ping => ParseServerPing(ref cursor, header, ref handler),
            FrameType.Pong => ParseServerPong(ref cursor, header, ref handler),
            FrameType.Ok => ParseOk(ref cursor, header, ref handler),
            FrameType.Error => ParseError(ref cursor, header, ref handler),
            FrameType.Confirm => ParseConfirm(ref cursor, header, ref handler),
            FrameType.Deliver => ParseDeliver(ref cursor, header, ref handler),
            FrameType.DeliverBatch => ParseDeliverBatch(ref cursor, header, ref handler, out index),
            FrameType.Dropped => ParseDropped(ref cursor, header, ref handler),
            FrameType.AdminResult => ParseAdminResult(ref cursor, header, ref handler),
            _ => cursor.Fail(null, Reasons.UnknownType),
        };

        return Finish(ok, ref buffer, body, header, cursor, index, out error);
    }

    /// <summary>
    /// Reads and checks the 16-byte header of the frame at the start of <paramref name="buffer"/>. False with no
    /// error when more bytes are needed (for the header or for the rest of the frame).
    /// </summary>
    public static bool TryReadHeader(in ReadOnlySequence<byte> buffer, int maxFrameSize, bool fromClient, out FrameHeader header, out FrameError error)
    {
        if (maxFrameSize < ProtocolConstants.HeaderSize)
        {
            ThrowHelper.ThrowMaxFrameSize(maxFrameSize);
        }

        header = default;
        error = default;
        Span<byte> copy = stackalloc byte[ProtocolConstants.HeaderSize];
        scoped ReadOnlySpan<byte> bytes = buffer.FirstSpan;
        if (bytes.Length < ProtocolConstants.HeaderSize)
        {
            var available = (int)Math.Min(buffer.Length, ProtocolConstants.HeaderSize);
            buffer.Slice(0, available).CopyTo(copy);
            bytes = copy[..available];
        }
        else
        {
            bytes = bytes[..ProtocolConstants.HeaderSize];
        }

        if (bytes.Length < ProtocolConstants.LengthPrefixSize)
        {
            return false;
        }

        var length = BinaryPrimitives.ReadUInt32LittleEndian(bytes);
        if (length < ProtocolConstants.MinLengthField)
        {
            return HeaderError(ErrorCode.MalformedFrame, Reasons.LengthTooSmall, FrameType.None, out error);
        }

        if (length > (uint)(maxFrameSize - ProtocolConstants.LengthPrefixSize))
        {
            return HeaderError(ErrorCode.FrameTooLarge, Reasons.LengthTooLarge, FrameType.None, out error);
        }

        if (bytes.Length < 5)
        {
            return false;
        }

        var type = (FrameType)bytes[4];
        if (!FrameTypes.IsDefined(type))
        {
            return HeaderError(ErrorCode.MalformedFrame, Reasons.UnknownType, FrameType.None, out error);
        }

        if (fromClient ? !FrameTypes.IsSentByClient(type) : !FrameTypes.IsSentByServer(type))
        {
            return HeaderError(ErrorCode.UnexpectedFrame, Reasons.WrongDirection, type, out error);
        }

        if (bytes.Length < 6)
        {
            return false;
        }

        var flags = bytes[5];
        if ((flags & ~FrameTypes.AllowedFlags(type)) != 0)
        {
            return HeaderError(ErrorCode.MalformedFrame, Reasons.UnknownFlags, type, out error);
        }

        if (bytes.Length < 8)
        {
            return false;
        }

        if (bytes[6] != 0 || bytes[7] != 0)
        {
            return HeaderError(ErrorCode.MalformedFrame, Reasons.ReservedHeader, type, out error);
        }

        if (bytes.Length < ProtocolConstants.HeaderSize || buffer.Length < ProtocolConstants.LengthPrefixSize + (long)length)
        {
            return false;
        }

        header = new FrameHeader((int)length, type, flags, BinaryPrimitives.ReadUInt64LittleEndian(bytes[8..]));
        return true;
    }

    private static bool HeaderError(ErrorCode code, string reason, FrameType type, out FrameError error)
    {
        error = new FrameError(code, reason, type, 0, null, -1);
        return false;
    }

    private delegate bool BatchParse<THandler>(ref FieldCursor cursor, in FrameHeader header, ref THandler handler, out int index);

    /// <summary>
    /// A PUBLISH_BATCH or DELIVER_BATCH that spans buffer segments (a batch larger than a segment, or one across a
    /// segment's end) is copied whole into one rented array and parsed from there, so its entries take the contiguous
    /// path (<see cref="ContiguousEntries"/>): one copy of its bytes costs a fraction of reading every field across
    /// segments. The handler's slices point into the copy, valid during the call as for any frame; the connection's
    /// buffer is advanced past the frame in its own segments.
    /// </summary>
    private static bool ParseCopied<THandler>(ref ReadOnlySequence<byte> buffer, in ReadOnlySequence<byte> body, in FrameHeader header, ref THandler handler, BatchParse<THandler> parse, out FrameError error)
        where THandler : struct
    {
        var length = (int)body.Length;
        var copy = ArrayPool<byte>.Shared.Rent(length);
        try
        {
            body.CopyTo(copy);
            var cursor = new FieldCursor(new ReadOnlySequence<byte>(copy, 0, length), stackalloc byte[ScratchSize]);
            var ok = parse(ref cursor, header, ref handler, out var index);
            return Finish(ok, ref buffer, body, header, cursor, index, out error);
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(copy);
        }
    }

    private static bool Finish(bool ok, ref ReadOnlySequence<byte> buffer, in ReadOnlySequence<byte> body, in FrameHeader header, in FieldCursor cursor, int index, out FrameError error)
    {
        if (!ok)
        {
            error = new FrameError(ErrorCode.MalformedFrame, cursor.Reason ?? Reasons.UnknownType, header.Type, header.RequestId, cursor.Field, index);
            return false;
        }

        error = default;
        buffer = buffer.Slice(body.End);
        return true;
    }
}
