namespace FastBroker.Protocol;

/// <summary>Facts about frame types: names, directions, allowed flag bits.</summary>
public static class FrameTypes
{
    /// <summary>True for a type a client may send (HELLO, PING, PONG, PUBLISH, PUBLISH_BATCH, INIT_PRODUCER, SUBSCRIBE, UNSUBSCRIBE, CREDIT, COMMIT, JOIN_GROUP, ACK, NACK, ADMIN).</summary>
    public static bool IsSentByClient(FrameType type) => type switch
    {
        FrameType.Hello or FrameType.Ping or FrameType.Pong or FrameType.Publish or FrameType.PublishBatch
            or FrameType.InitProducer or FrameType.Subscribe or FrameType.Unsubscribe or FrameType.Credit or FrameType.Commit
            or FrameType.JoinGroup or FrameType.Ack or FrameType.Nack or FrameType.Admin => true,
        _ => false,
    };

    /// <summary>True for a type a server may send (WELCOME, PING, PONG, OK, ERROR, CONFIRM, DELIVER, DELIVER_BATCH, DROPPED, ADMIN_RESULT).</summary>
    public static bool IsSentByServer(FrameType type) => type switch
    {
        FrameType.Welcome or FrameType.Ping or FrameType.Pong or FrameType.Ok or FrameType.Error or FrameType.Confirm
            or FrameType.Deliver or FrameType.DeliverBatch or FrameType.Dropped or FrameType.AdminResult => true,
        _ => false,
    };

    /// <summary>True for any defined frame type.</summary>
    public static bool IsDefined(FrameType type) => IsSentByClient(type) || IsSentByServer(type);

    /// <summary>The flag bits defined for <paramref name="type"/>; any other bit set makes the frame malformed.</summary>
    public static byte AllowedFlags(FrameType type) => type switch
    {
        FrameType.Publish or FrameType.PublishBatch => (byte)PublishFlags.NoConfirm,
        FrameType.Nack => (byte)NackFlags.Requeue,
        FrameType.Error => (byte)(ErrorFlags.CloseConnection | ErrorFlags.SubscriptionEnded),
        _ => 0,
    };

    /// <summary>The docs/protocol.md name of the type, e.g. <c>PUBLISH_BATCH</c>.</summary>
    public static string GetName(FrameType type) => type switch
    {
        FrameType.Hello => "HELLO",
        FrameType.Welcome => "WELCOME",
        FrameType.Ping => "PING",
        FrameType.Pong => "PONG",
        FrameType.Ok => "OK",
        FrameType.Error => "ERROR",
        FrameType.Publish => "PUBLISH",
        FrameType.PublishBatch => "PUBLISH_BATCH",
        FrameType.Confirm => "CONFIRM",
        FrameType.InitProducer => "INIT_PRODUCER",
        FrameType.Subscribe => "SUBSCRIBE",
        FrameType.Unsubscribe => "UNSUBSCRIBE",
        FrameType.Credit => "CREDIT",
        FrameType.Commit => "COMMIT",
        FrameType.Deliver => "DELIVER",
        FrameType.DeliverBatch => "DELIVER_BATCH",
        FrameType.Dropped => "DROPPED",
        FrameType.JoinGroup => "JOIN_GROUP",
        FrameType.Ack => "ACK",
        FrameType.Nack => "NACK",
        FrameType.Admin => "ADMIN",
        FrameType.AdminResult => "ADMIN_RESULT",
        _ => "UNKNOWN",
    };
}
