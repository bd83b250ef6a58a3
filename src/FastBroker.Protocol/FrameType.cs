namespace FastBroker.Protocol;

/// <summary>The frame type byte (offset 4 of every frame). Values are stable wire constants.</summary>
public enum FrameType : byte
{
    /// <summary>Not a frame type; used when the type is not known yet.</summary>
    None = 0,

    /// <summary>Client → server, first frame of a connection: magic, versions, features, name, auth token.</summary>
    Hello = 0x01,

    /// <summary>Server → client reply to HELLO: chosen version, features, limits.</summary>
    Welcome = 0x02,

    /// <summary>Either direction: liveness probe, answered by PONG with the same request id.</summary>
    Ping = 0x03,

    /// <summary>Either direction: answer to PING.</summary>
    Pong = 0x04,

    /// <summary>Server → client: the request with this request id succeeded; carries a u64 result.</summary>
    Ok = 0x05,

    /// <summary>Server → client: a request failed, or the connection or a subscription is ending.</summary>
    Error = 0x06,

    /// <summary>Client → server: publish one message.</summary>
    Publish = 0x10,

    /// <summary>Client → server: publish several messages (consecutive request ids).</summary>
    PublishBatch = 0x11,

    /// <summary>Server → client: publish confirmations by request-id range.</summary>
    Confirm = 0x12,

    /// <summary>Client → server: ask the next producer sequence of an idempotent producer id (answered by OK).</summary>
    InitProducer = 0x13,

    /// <summary>Client → server: start a fan-out subscription.</summary>
    Subscribe = 0x20,

    /// <summary>Client → server: end a subscription or leave a group.</summary>
    Unsubscribe = 0x21,

    /// <summary>Client → server: add prefetch credit to a subscription or group membership.</summary>
    Credit = 0x22,

    /// <summary>Client → server: store the position of a durable subscription.</summary>
    Commit = 0x23,

    /// <summary>Server → client: one message for a subscription.</summary>
    Deliver = 0x24,

    /// <summary>Server → client: several messages for one subscription.</summary>
    DeliverBatch = 0x25,

    /// <summary>Server → client: a subscription missed messages (a transient topic's ring overran it, or retention deleted them).</summary>
    Dropped = 0x26,

    /// <summary>Client → server: join a work-queue group as a member.</summary>
    JoinGroup = 0x30,

    /// <summary>Client → server: acknowledge work-queue deliveries.</summary>
    Ack = 0x31,

    /// <summary>Client → server: reject a work-queue delivery (requeue with delay, or dead-letter).</summary>
    Nack = 0x32,

    /// <summary>Client → server: administrative query.</summary>
    Admin = 0x40,

    /// <summary>Server → client: result of an administrative query.</summary>
    AdminResult = 0x41,
}
