using FastBroker.Protocol;

namespace FastBroker.Server.Internal;

/// <summary>The struct the parser calls (constrained, no boxing); forwards each frame to its session.</summary>
internal readonly struct FrameHandler(Session session) : IClientFrameHandler
{
    public void OnHello(in FrameHeader header, in HelloFrame frame) => session.OnHello(header, frame);

    public void OnPing(in FrameHeader header) => session.OnPing(header);

    public void OnPong(in FrameHeader header) => session.OnPong(header);

    public void OnPublish(in FrameHeader header, in PublishFrame frame) => session.OnPublish(header, frame);

    public void OnPublishBatch(in FrameHeader header, in PublishBatchFrame frame) => session.OnPublishBatch(header, frame);

    public void OnInitProducer(in FrameHeader header, ulong producerId, ulong? epoch) => session.OnInitProducer(header, producerId, epoch);

    public void OnSubscribe(in FrameHeader header, in SubscribeFrame frame) => session.OnSubscribe(header, frame);

    public void OnUnsubscribe(in FrameHeader header, uint subscriptionId) => session.OnUnsubscribe(header, subscriptionId);

    public void OnCredit(in FrameHeader header, uint subscriptionId, uint credit) => session.OnCredit(header, subscriptionId, credit);

    public void OnCommit(in FrameHeader header, uint subscriptionId, ulong offset, ReadOnlySpan<byte> topic) => session.OnCommit(header, subscriptionId, offset, topic);

    public void OnJoinGroup(in FrameHeader header, in JoinGroupFrame frame) => session.OnJoinGroup(header, frame);

    public void OnAck(in FrameHeader header, in AckFrame frame) => session.OnAck(header, frame);

    public void OnNack(in FrameHeader header, in NackFrame frame) => session.OnNack(header, frame);

    public void OnAdmin(in FrameHeader header, in AdminFrame frame) => session.OnAdmin(header, frame);
}
