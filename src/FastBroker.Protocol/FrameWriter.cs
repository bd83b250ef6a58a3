using System.Buffers;
using System.Text;
using FastBroker.Protocol.Internal;

namespace FastBroker.Protocol;

/// <summary>
/// Writes frames into an <see cref="IBufferWriter{T}"/> (PipeWriter-compatible) without allocating: each method
/// computes the frame length from its arguments, writes the 16-byte header and the body, and calls Advance
/// (never Flush: the caller batches several frames per flush). Returns the bytes written. Arguments the wire
/// format cannot carry (a 256-byte topic, subscription id 0…) throw <see cref="ArgumentException"/>; checking
/// the peer's maximum frame size is the caller's job (the Get…Size helpers compute it beforehand).
/// </summary>
public static partial class FrameWriter
{
    private const int H = ProtocolConstants.HeaderSize;

    /// <summary>HELLO: the client's first frame.</summary>
    public static int WriteHello(
        IBufferWriter<byte> writer,
        ulong requestId,
        ReadOnlySpan<byte> clientName,
        ReadOnlySpan<byte> clientVersion,
        ProtocolFeatures features,
        ReadOnlySpan<byte> authToken = default,
        uint maxInboundFrameSize = 0,
        ushort minVersion = ProtocolConstants.Version,
        ushort maxVersion = ProtocolConstants.Version)
    {
        Check.Name(clientName, nameof(clientName), allowEmpty: true);
        Check.Name(clientVersion, nameof(clientVersion), allowEmpty: true);
        Check.Short(authToken, nameof(authToken));
        long total = H + 20 + 1 + clientName.Length + 1 + clientVersion.Length + 2 + authToken.Length;
        var o = new FrameOutput(writer, total);
        o.Header(total, FrameType.Hello, 0, requestId);
        o.U32(ProtocolConstants.Magic);
        o.U16(minVersion);
        o.U16(maxVersion);
        o.U64((ulong)features);
        o.U32(maxInboundFrameSize);
        o.Str8(clientName);
        o.Str8(clientVersion);
        o.Bytes16(authToken);
        o.Commit();
        return (int)total;
    }

    /// <summary>WELCOME: the server's reply to HELLO (same request id).</summary>
    public static int WriteWelcome(
        IBufferWriter<byte> writer,
        ulong requestId,
        ushort version,
        uint maxFrameSize,
        ProtocolFeatures features,
        ulong connectionId,
        uint maxSubscriptions,
        uint heartbeatIntervalMs,
        ReadOnlySpan<byte> serverName,
        ReadOnlySpan<byte> serverVersion)
    {
        Check.Name(serverName, nameof(serverName), allowEmpty: true);
        Check.Name(serverVersion, nameof(serverVersion), allowEmpty: true);
        long total = H + 32 + 1 + serverName.Length + 1 + serverVersion.Length;
        var o = new FrameOutput(writer, total);
        o.Header(total, FrameType.Welcome, 0, requestId);
        o.U16(version);
        o.U16(0);
        o.U32(maxFrameSize);
        o.U64((ulong)features);
        o.U64(connectionId);
        o.U32(maxSubscriptions);
        o.U32(heartbeatIntervalMs);
        o.Str8(serverName);
        o.Str8(serverVersion);
        o.Commit();
        return (int)total;
    }

    /// <summary>PING (either direction).</summary>
    public static int WritePing(IBufferWriter<byte> writer, ulong requestId) => WriteEmpty(writer, FrameType.Ping, requestId);

    /// <summary>PONG (either direction) with the PING's request id.</summary>
    public static int WritePong(IBufferWriter<byte> writer, ulong requestId) => WriteEmpty(writer, FrameType.Pong, requestId);

    /// <summary>OK: the request succeeded; <paramref name="value"/> as documented per request type.</summary>
    public static int WriteOk(IBufferWriter<byte> writer, ulong requestId, ulong value)
        => WriteU64Body(writer, FrameType.Ok, requestId, value);

    /// <summary>
    /// OK with a second value: the answer to an INIT_PRODUCER that carried an epoch (feature
    /// <see cref="ProtocolFeatures.ProducerEpoch"/>): <paramref name="value"/> is the next sequence, <paramref name="epoch"/> the producer's epoch.
    /// </summary>
    public static int WriteOk(IBufferWriter<byte> writer, ulong requestId, ulong value, ulong epoch)
        => WriteTwoU64Body(writer, FrameType.Ok, requestId, value, epoch);

    /// <summary>A frame whose body is two <c>u64</c> (OK to an INIT_PRODUCER with an epoch, INIT_PRODUCER with an epoch).</summary>
    private static int WriteTwoU64Body(IBufferWriter<byte> writer, FrameType type, ulong requestId, ulong first, ulong second)
    {
        const int total = H + 16;
        var o = new FrameOutput(writer, total);
        o.Header(total, type, 0, requestId);
        o.U64(first);
        o.U64(second);
        o.Commit();
        return total;
    }

    /// <summary>A frame whose body is one <c>u64</c> (OK, INIT_PRODUCER).</summary>
    private static int WriteU64Body(IBufferWriter<byte> writer, FrameType type, ulong requestId, ulong value)
    {
        const int total = H + 8;
        var o = new FrameOutput(writer, total);
        o.Header(total, type, 0, requestId);
        o.U64(value);
        o.Commit();
        return total;
    }

    /// <summary>ERROR with a UTF-8 reason (at most 65535 bytes).</summary>
    public static int WriteError(IBufferWriter<byte> writer, ulong requestId, ErrorCode code, ReadOnlySpan<byte> reason, ErrorFlags flags = ErrorFlags.None, uint subscriptionId = 0)
    {
        Check.Short(reason, nameof(reason));
        long total = H + 8 + 2 + reason.Length;
        var o = new FrameOutput(writer, total);
        ErrorPrefix(ref o, total, requestId, code, flags, subscriptionId);
        o.Bytes16(reason);
        o.Commit();
        return (int)total;
    }

    /// <summary>
    /// ERROR with a reason encoded to UTF-8 in place. It is always written: invalid UTF-16 (a lone surrogate) is sent as
    /// U+FFFD, and a reason longer than <paramref name="maxReasonBytes"/> once encoded (at most 65535, a <c>str16</c>;
    /// a sender passes what the peer's maxInboundFrameSize leaves) is cut between two characters, never inside a UTF-8
    /// sequence or a surrogate pair, and ends with "…" (3 bytes), the whole within the limit.
    /// </summary>
    public static int WriteError(IBufferWriter<byte> writer, ulong requestId, ErrorCode code, ReadOnlySpan<char> reason, ErrorFlags flags = ErrorFlags.None, uint subscriptionId = 0, int maxReasonBytes = ProtocolConstants.MaxShortBytesLength)
    {
        var max = Math.Clamp(maxReasonBytes, 0, ProtocolConstants.MaxShortBytesLength);

        // A character is at least one byte: a text longer in characters is too long (and is not counted, which for
        // a text of a billion characters would overflow).
        var cut = reason.Length > max || Encoding.UTF8.GetByteCount(reason) > max;
        var ellipsis = cut && max >= Ellipsis.Length ? Ellipsis : [];
        if (cut)
        {
            reason = reason[..FittingChars(reason, max - ellipsis.Length)];
        }

        var length = Encoding.UTF8.GetByteCount(reason) + ellipsis.Length;
        long total = H + 8 + 2 + length;
        var o = new FrameOutput(writer, total);
        ErrorPrefix(ref o, total, requestId, code, flags, subscriptionId);
        o.U16((ushort)length);
        var text = o.Take(length);
        var written = Encoding.UTF8.GetBytes(reason, text);
        ellipsis.CopyTo(text[written..]);
        o.Commit();
        return (int)total;
    }

    /// <summary>"…" (U+2026) in UTF-8: the mark of a reason cut to fit.</summary>
    private static ReadOnlySpan<byte> Ellipsis => "\u2026"u8;

    /// <summary>How many characters of <paramref name="text"/> take at most <paramref name="maxBytes"/> in UTF-8, whole characters only.</summary>
    private static int FittingChars(ReadOnlySpan<char> text, int maxBytes)
    {
        var bytes = 0;
        var i = 0;
        while (i < text.Length)
        {
            var c = text[i];
            var chars = 1;
            int width;
            if (c < 0x80)
            {
                width = 1;
            }
            else if (c < 0x800)
            {
                width = 2;
            }
            else if (char.IsHighSurrogate(c) && i + 1 < text.Length && char.IsLowSurrogate(text[i + 1]))
            {
                width = 4;
                chars = 2;
            }
            else
            {
                width = 3; // the rest of the BMP, and a lone surrogate (sent as U+FFFD)
            }

            if (bytes + width > maxBytes)
            {
                break;
            }

            bytes += width;
            i += chars;
        }

        return i;
    }

    private static void ErrorPrefix(ref FrameOutput o, long total, ulong requestId, ErrorCode code, ErrorFlags flags, uint subscriptionId)
    {
        o.Header(total, FrameType.Error, (byte)flags, requestId);
        o.U16((ushort)code);
        o.U16(0);
        o.U32(subscriptionId);
    }

    /// <summary>ADMIN: an administrative query (argument: topic name or pattern, may be empty).</summary>
    public static int WriteAdmin(IBufferWriter<byte> writer, ulong requestId, AdminQuery query, ReadOnlySpan<byte> argument = default)
    {
        Check.Name(argument, nameof(argument), allowEmpty: true);
        long total = H + 1 + 1 + argument.Length;
        var o = new FrameOutput(writer, total);
        o.Header(total, FrameType.Admin, 0, requestId);
        o.U8((byte)query);
        o.Str8(argument);
        o.Commit();
        return (int)total;
    }

    /// <summary>ADMIN_RESULT: the UTF-8 JSON answer to an ADMIN (same request id).</summary>
    public static int WriteAdminResult(IBufferWriter<byte> writer, ulong requestId, AdminQuery query, ReadOnlySpan<byte> json)
    {
        long total = H + 4 + 4 + (long)json.Length;
        var o = new FrameOutput(writer, total);
        o.Header(total, FrameType.AdminResult, 0, requestId);
        o.U8((byte)query);
        o.U8((byte)AdminResultFormat.Json);
        o.U16(0);
        o.Bytes32(json);
        o.Commit();
        return (int)total;
    }

    private static int WriteEmpty(IBufferWriter<byte> writer, FrameType type, ulong requestId)
    {
        var o = new FrameOutput(writer, H);
        o.Header(H, type, 0, requestId);
        o.Commit();
        return H;
    }
}
