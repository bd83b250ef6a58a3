using FastBroker.Protocol;

namespace FastBroker.Client.Internal;

/// <summary>
/// A queued control frame (SUBSCRIBE, COMMIT, CREDIT, ADMIN…) and, when it expects a reply, what to complete with
/// it. Control frames are rare next to publishes, so these are plain allocations.
/// </summary>
internal sealed class ControlOp
{
    public ControlOp(ControlKind kind, long generation, SubscriptionState? subscription = null, bool awaited = false)
    {
        Kind = kind;
        Generation = generation;
        Subscription = subscription;
        Completion = awaited ? new TaskCompletionSource<ulong>(TaskCreationOptions.RunContinuationsAsynchronously) : null;
    }

    public ControlKind Kind { get; }

    /// <summary>The connection the frame belongs to (SUBSCRIBE/JOIN_GROUP/CREDIT/NACK: meaningless on another); 0 = any connection.</summary>
    public long Generation { get; }

    public SubscriptionState? Subscription { get; }

    /// <summary>Completed with the OK value (or failed with the ERROR); null when nobody waits.</summary>
    public TaskCompletionSource<ulong>? Completion { get; }

    /// <summary>Request id on the connection it was sent on.</summary>
    public ulong RequestId { get; set; }

    /// <summary>CREDIT amount, SUBSCRIBE initial credit, JOIN_GROUP prefetch, NACK delivery count.</summary>
    public uint Value { get; init; }

    /// <summary>COMMIT offset, NACK offset, SUBSCRIBE start value, INIT_PRODUCER producer id.</summary>
    public ulong Offset { get; init; }

    /// <summary>COMMIT topic, NACK error text, ADMIN argument (UTF-8).</summary>
    public byte[] Text { get; init; } = [];

    /// <summary>COMMIT topic as a string (to record the committed position).</summary>
    public string? TopicName { get; init; }

    public StartKind Start { get; init; }

    public StartKind Fallback { get; init; }

    public bool Requeue { get; init; }

    public uint DelayMs { get; init; }

    public AdminQuery Query { get; init; }

    /// <summary>The ADMIN_RESULT document.</summary>
    public string? Result { get; set; }

    /// <summary>
    /// INIT_PRODUCER with an epoch (feature ProducerEpoch): 0 asks for a new one (a new instance), else resumes it; null =
    /// the form without an epoch. The answer's epoch is stored back here.
    /// </summary>
    public ulong? Epoch { get; set; }

    /// <summary>
    /// UNSUBSCRIBE of a group member: the ACKs the application queued before leaving, written just ahead of it (an ACK
    /// behind the UNSUBSCRIBE would be refused, and the server would already have requeued the acked message).
    /// </summary>
    public DeliveryTag[]? Acks { get; init; }

    /// <summary>When a PING was written (for the round-trip time).</summary>
    public long SentTimestamp { get; set; }
}
