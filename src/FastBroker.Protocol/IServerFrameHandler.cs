namespace FastBroker.Protocol;

/// <summary>
/// Receives the frames a server sends; the client implements it as a struct and passes it to
/// <see cref="FrameParser.TryParseServerFrame{THandler}"/>. Every span and sequence handed in slices the
/// connection buffer and is valid only during the call.
/// </summary>
public interface IServerFrameHandler
{
    /// <summary>WELCOME: the handshake succeeded.</summary>
    void OnWelcome(in FrameHeader header, in WelcomeFrame frame);

    /// <summary>PING: answer with PONG carrying the same request id.</summary>
    void OnPing(in FrameHeader header);

    /// <summary>PONG: the answer to a client PING.</summary>
    void OnPong(in FrameHeader header);

    /// <summary>OK: the request <c>header.RequestId</c> succeeded with <paramref name="value"/> (meaning per request, see docs/protocol.md); <paramref name="epoch"/> is 0 except in the answer to an INIT_PRODUCER with an epoch.</summary>
    void OnOk(in FrameHeader header, ulong value, ulong epoch);

    /// <summary>ERROR.</summary>
    void OnError(in FrameHeader header, in ErrorFrame frame);

    /// <summary>CONFIRM: publish confirmations by request-id range, already validated.</summary>
    void OnConfirm(in FrameHeader header, in ConfirmFrame frame);

    /// <summary>DELIVER: one message.</summary>
    void OnDeliver(in FrameHeader header, in DeliverFrame frame);

    /// <summary>DELIVER_BATCH: several messages, already fully validated.</summary>
    void OnDeliverBatch(in FrameHeader header, in DeliverBatchFrame frame);

    /// <summary>DROPPED: the subscription missed <paramref name="droppedCount"/> messages (ring overrun or retention) and resumes at <paramref name="resumeOffset"/>.</summary>
    void OnDropped(in FrameHeader header, uint subscriptionId, ulong droppedCount, ulong resumeOffset);

    /// <summary>ADMIN_RESULT.</summary>
    void OnAdminResult(in FrameHeader header, in AdminResultFrame frame);
}
