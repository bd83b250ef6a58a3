namespace FastBroker.Server.Internal;

/// <summary>The struct handler the broker's Fetch calls per message (devirtualised); the encoder does the work.</summary>
internal readonly struct DeliverHandler(DeliveryEncoder encoder) : IMessageHandler
{
    public void OnMessage(scoped in MessageView message) => encoder.Write(message);
}
