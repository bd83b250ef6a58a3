namespace FastBroker.Protocol;

/// <summary>The 16 bytes that start every frame: length, type, flags, reserved, request id.</summary>
public readonly struct FrameHeader
{
    /// <summary>Creates a header.</summary>
    public FrameHeader(int length, FrameType type, byte flags, ulong requestId)
    {
        Length = length;
        Type = type;
        Flags = flags;
        RequestId = requestId;
    }

    /// <summary>The length field: bytes after the 4-byte prefix (header rest + body).</summary>
    public int Length { get; }

    /// <summary>The frame type.</summary>
    public FrameType Type { get; }

    /// <summary>The type-specific flag bits (<see cref="PublishFlags"/>, <see cref="ErrorFlags"/>, <see cref="NackFlags"/>).</summary>
    public byte Flags { get; }

    /// <summary>The request id (client-chosen for requests, echoed in replies, 0 in unsolicited server frames).</summary>
    public ulong RequestId { get; }

    /// <summary>Bytes of the body that follows the 16-byte header.</summary>
    public int BodyLength => Length - ProtocolConstants.MinLengthField;

    /// <summary>Bytes of the whole frame, prefix included.</summary>
    public int TotalLength => Length + ProtocolConstants.LengthPrefixSize;
}
