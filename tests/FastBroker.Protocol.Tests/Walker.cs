using FastBroker.Protocol;

namespace FastBroker.ProtocolTests;

/// <summary>Touches every field and enumerates every batch and header block, allocating nothing.</summary>
internal struct Walker : IClientFrameHandler, IServerFrameHandler
{
    public long Frames;
    public long Checksum;

    private void Headers(in HeaderBlock block)
    {
        foreach (var e in block)
        {
            Checksum += e.Name.Length + e.Value.Length;
        }
    }

    public void OnHello(in FrameHeader header, in HelloFrame frame)
    {
        Frames++;
        Checksum += frame.ClientName.Length + frame.AuthToken.Length;
    }

    public void OnPing(in FrameHeader header) => Frames++;

    public void OnPong(in FrameHeader header) => Frames++;

    public void OnPublish(in FrameHeader header, in PublishFrame frame)
    {
        Frames++;
        Checksum += frame.Topic.Length + frame.Payload.Length + frame.MessageBlock.Length;
        Headers(frame.Headers);
    }

    public void OnPublishBatch(in FrameHeader header, in PublishBatchFrame frame)
    {
        Frames++;
        foreach (var e in frame)
        {
            Checksum += e.Topic.Length + e.Payload.Length + e.Key.Length;
            Headers(e.Headers);
        }
    }

    public void OnSubscribe(in FrameHeader header, in SubscribeFrame frame)
    {
        Frames++;
        Checksum += frame.Pattern.Length + frame.DurableName.Length;
        Headers(frame.Filters);
    }

    public void OnInitProducer(in FrameHeader header, ulong producerId, ulong? epoch) => Frames++;

    public void OnUnsubscribe(in FrameHeader header, uint subscriptionId) => Frames++;

    public void OnCredit(in FrameHeader header, uint subscriptionId, uint credit) => Frames++;

    public void OnCommit(in FrameHeader header, uint subscriptionId, ulong offset, ReadOnlySpan<byte> topic)
    {
        Frames++;
        Checksum += topic.Length;
    }

    public void OnJoinGroup(in FrameHeader header, in JoinGroupFrame frame)
    {
        Frames++;
        Checksum += frame.Group.Length + frame.Topic.Length;
    }

    public void OnAck(in FrameHeader header, in AckFrame frame)
    {
        Frames++;
        foreach (var t in frame)
        {
            Checksum += (long)t.Offset + t.DeliveryCount;
        }
    }

    public void OnNack(in FrameHeader header, in NackFrame frame)
    {
        Frames++;
        Checksum += frame.ErrorText.Length;
    }

    public void OnAdmin(in FrameHeader header, in AdminFrame frame)
    {
        Frames++;
        Checksum += frame.Argument.Length;
    }

    public void OnWelcome(in FrameHeader header, in WelcomeFrame frame)
    {
        Frames++;
        Checksum += frame.ServerName.Length;
    }

    public void OnOk(in FrameHeader header, ulong value, ulong epoch) => Frames++;

    public void OnError(in FrameHeader header, in ErrorFrame frame)
    {
        Frames++;
        Checksum += frame.Reason.Length;
    }

    public void OnConfirm(in FrameHeader header, in ConfirmFrame frame)
    {
        Frames++;
        foreach (var r in frame)
        {
            Checksum += r.Count;
        }
    }

    public void OnDeliver(in FrameHeader header, in DeliverFrame frame)
    {
        Frames++;
        Checksum += frame.Topic.Length + frame.Payload.Length;
        Headers(frame.Headers);
    }

    public void OnDeliverBatch(in FrameHeader header, in DeliverBatchFrame frame)
    {
        Frames++;
        foreach (var e in frame)
        {
            Checksum += e.Topic.Length + e.Payload.Length;
            Headers(e.Headers);
        }
    }

    public void OnDropped(in FrameHeader header, uint subscriptionId, ulong droppedCount, ulong resumeOffset) => Frames++;

    public void OnAdminResult(in FrameHeader header, in AdminResultFrame frame)
    {
        Frames++;
        Checksum += frame.Result.Length;
    }
}
