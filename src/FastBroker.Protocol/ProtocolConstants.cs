namespace FastBroker.Protocol;

/// <summary>Fixed numbers of the wire protocol (docs/protocol.md, "Framing" and "Handshake").</summary>
public static class ProtocolConstants
{
    /// <summary>The HELLO magic: the bytes <c>46 42 52 4B</c> ("FBRK") read as a little-endian u32.</summary>
    public const uint Magic = 0x4B524246;

    /// <summary>The protocol version this library speaks.</summary>
    public const ushort Version = 1;

    /// <summary>Size of the length prefix that precedes every frame.</summary>
    public const int LengthPrefixSize = 4;

    /// <summary>Length prefix + type + flags + reserved + request id: every frame starts with these 16 bytes.</summary>
    public const int HeaderSize = 16;

    /// <summary>Smallest legal value of the length field: the 12 header bytes that follow the prefix.</summary>
    public const int MinLengthField = HeaderSize - LengthPrefixSize;

    /// <summary>Default maximum frame size (prefix included): 1 MiB holds a 1 MB message with room for its envelope.</summary>
    public const int DefaultMaxFrameSize = 1024 * 1024;

    /// <summary>Every server accepts frames of at least this size (prefix included), so a client may always send them.</summary>
    public const int MinimumMaxFrameSize = 64 * 1024;

    /// <summary>Longest short string (<c>str8</c>): topic names, patterns, group and durable names, header names.</summary>
    public const int MaxNameLength = byte.MaxValue;

    /// <summary>Longest key and header value (<c>bytes16</c>) and reason text (<c>str16</c>).</summary>
    public const int MaxShortBytesLength = ushort.MaxValue;

    /// <summary>Most messages, ranges or tags in one batch frame (a u16 count).</summary>
    public const int MaxBatchCount = ushort.MaxValue;

    /// <summary>Fixed part of a CONFIRM range entry.</summary>
    public const int ConfirmRangeSize = 24;

    /// <summary>Fixed part of an ACK delivery tag entry.</summary>
    public const int DeliveryTagSize = 12;
}
