using FastBroker.Protocol;

namespace FastBroker.Client.Internal;

/// <summary>The struct handler the reader loop passes to <see cref="FrameParser.TryParseServerFrame{THandler}"/>: forwards each frame to the client.</summary>
internal readonly struct ServerFrameHandler(BrokerClient client, Connection connection) : IServerFrameHandler
{
    public void OnWelcome(in FrameHeader header, in WelcomeFrame frame)
        => connection.SetWelcome(new WelcomeInfo(
            frame.Version,
            (int)Math.Min(frame.MaxFrameSize, int.MaxValue),
            frame.Features,
            frame.ConnectionId,
            frame.MaxSubscriptions,
            frame.HeartbeatIntervalMs,
            System.Text.Encoding.UTF8.GetString(frame.ServerName),
            System.Text.Encoding.UTF8.GetString(frame.ServerVersion)));

    public void OnPing(in FrameHeader header) => client.OnServerPing(header.RequestId);

    public void OnPong(in FrameHeader header) => client.OnPong(header.RequestId);

    public void OnOk(in FrameHeader header, ulong value, ulong epoch) => client.OnOk(header.RequestId, value, epoch);

    public void OnError(in FrameHeader header, in ErrorFrame frame)
        => client.OnServerError(connection, header.RequestId, frame.Code, frame.GetReasonString(), frame.SubscriptionId, frame.CloseConnection, frame.SubscriptionEnded);

    public void OnConfirm(in FrameHeader header, in ConfirmFrame frame) => client.OnConfirm(connection, frame);

    public void OnDeliver(in FrameHeader header, in DeliverFrame frame)
        => client.OnDeliver(connection, frame.SubscriptionId, frame.DeliveryCount, frame.Offset, frame.TimestampNs, frame.Topic, frame.MessageBlock, (int)frame.Key.Length, frame.Headers, (int)frame.Payload.Length);

    public void OnDeliverBatch(in FrameHeader header, in DeliverBatchFrame frame)
    {
        foreach (var entry in frame)
        {
            client.OnDeliver(connection, frame.SubscriptionId, entry.DeliveryCount, entry.Offset, entry.TimestampNs, entry.Topic, entry.MessageBlock, (int)entry.Key.Length, entry.Headers, (int)entry.Payload.Length);
        }
    }

    public void OnDropped(in FrameHeader header, uint subscriptionId, ulong droppedCount, ulong resumeOffset)
        => client.OnDropped(subscriptionId, droppedCount, resumeOffset);

    public void OnAdminResult(in FrameHeader header, in AdminResultFrame frame)
        => client.OnAdminResult(header.RequestId, System.Text.EncodingExtensions.GetString(System.Text.Encoding.UTF8, frame.Result));
}
