using System.Text;
using FastBroker.Protocol;

namespace FastBroker.ServerTests;

/// <summary>One frame received from the server, copied out of the read buffer (test-only: allocates).</summary>
internal sealed class ServerFrame
{
    public FrameType Type { get; init; }

    public byte Flags { get; init; }

    public ulong RequestId { get; init; }

    public ulong OkValue { get; init; }

    /// <summary>OK: the epoch, in the answer to an INIT_PRODUCER with one (else 0).</summary>
    public ulong OkEpoch { get; init; }

    public ErrorCode ErrorCode { get; init; }

    public string ErrorReason { get; init; } = "";

    public uint ErrorSubscriptionId { get; init; }

    public bool CloseConnection => Type == FrameType.Error && (Flags & (byte)ErrorFlags.CloseConnection) != 0;

    public bool SubscriptionEnded => Type == FrameType.Error && (Flags & (byte)ErrorFlags.SubscriptionEnded) != 0;

    public List<ConfirmRange> Ranges { get; } = [];

    public List<Delivery> Deliveries { get; } = [];

    public uint DroppedSubscriptionId { get; init; }

    public ulong DroppedCount { get; init; }

    public ulong ResumeOffset { get; init; }

    public Welcome? Welcome { get; init; }

    public AdminQuery AdminQuery { get; init; }

    public string AdminJson { get; init; } = "";

    public override string ToString() => Type switch
    {
        FrameType.Error => $"ERROR#{RequestId} {ErrorCode} ({(ushort)ErrorCode}) close={CloseConnection} ended={SubscriptionEnded} sub={ErrorSubscriptionId}: {ErrorReason}",
        FrameType.Ok => $"OK#{RequestId} {OkValue}",
        FrameType.Confirm => $"CONFIRM {string.Join(" ", Ranges.Select(r => $"[{r.FirstRequestId}+{r.Count} {r.Status} @{r.FirstOffset}{(r.Duplicate ? " dup" : "")}]"))}",
        FrameType.Deliver or FrameType.DeliverBatch => $"{FrameTypes.GetName(Type)} {string.Join(" ", Deliveries)}",
        _ => $"{FrameTypes.GetName(Type)}#{RequestId}",
    };
}

internal sealed record Welcome(ushort Version, uint MaxFrameSize, ProtocolFeatures Features, ulong ConnectionId, uint MaxSubscriptions, uint HeartbeatIntervalMs, string ServerName, string ServerVersion);

internal sealed record Delivery(uint SubscriptionId, uint DeliveryCount, ulong Offset, long TimestampNs, string Topic, byte[] Key, byte[] Headers, byte[] Payload)
{
    public string Text => Encoding.UTF8.GetString(Payload);

    public DeliveryTag Tag => new(Offset, DeliveryCount);

    public override string ToString() => $"{SubscriptionId}:{Topic}@{Offset}#{DeliveryCount}={Text}";
}
