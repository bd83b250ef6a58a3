namespace FastBroker.Protocol;

/// <summary>
/// Receives the frames a client sends; the server implements it as a struct and passes it to
/// <see cref="FrameParser.TryParseClientFrame{THandler}"/> (constrained calls, no boxing, no virtual dispatch).
/// Every span and sequence handed in slices the connection buffer and is valid only during the call.
/// </summary>
public interface IClientFrameHandler
{
    /// <summary>HELLO: the handshake request.</summary>
    void OnHello(in FrameHeader header, in HelloFrame frame);

    /// <summary>PING: answer with PONG carrying the same request id.</summary>
    void OnPing(in FrameHeader header);

    /// <summary>PONG: the answer to a server PING.</summary>
    void OnPong(in FrameHeader header);

    /// <summary>PUBLISH: one message.</summary>
    void OnPublish(in FrameHeader header, in PublishFrame frame);

    /// <summary>PUBLISH_BATCH: several messages, already fully validated.</summary>
    void OnPublishBatch(in FrameHeader header, in PublishBatchFrame frame);

    /// <summary>INIT_PRODUCER: answer OK with the next producer sequence of <paramref name="producerId"/> (and, when <paramref name="epoch"/> is given, its epoch: feature ProducerEpoch).</summary>
    void OnInitProducer(in FrameHeader header, ulong producerId, ulong? epoch);

    /// <summary>SUBSCRIBE.</summary>
    void OnSubscribe(in FrameHeader header, in SubscribeFrame frame);

    /// <summary>UNSUBSCRIBE: end a subscription or leave a group.</summary>
    void OnUnsubscribe(in FrameHeader header, uint subscriptionId);

    /// <summary>CREDIT: add <paramref name="credit"/> (≥ 1) to the subscription's prefetch.</summary>
    void OnCredit(in FrameHeader header, uint subscriptionId, uint credit);

    /// <summary>COMMIT: store <paramref name="offset"/> (the next offset to deliver) as the durable position in <paramref name="topic"/> (UTF-8; empty = the subscription's only topic).</summary>
    void OnCommit(in FrameHeader header, uint subscriptionId, ulong offset, ReadOnlySpan<byte> topic);

    /// <summary>JOIN_GROUP.</summary>
    void OnJoinGroup(in FrameHeader header, in JoinGroupFrame frame);

    /// <summary>ACK: one or more delivery tags, already validated.</summary>
    void OnAck(in FrameHeader header, in AckFrame frame);

    /// <summary>NACK.</summary>
    void OnNack(in FrameHeader header, in NackFrame frame);

    /// <summary>ADMIN.</summary>
    void OnAdmin(in FrameHeader header, in AdminFrame frame);
}
