namespace FastBroker.Server.Internal;

/// <summary>
/// The struct handler a membership's fetch calls per delivery: writes it like <see cref="DeliverHandler"/>, and notes
/// the ones the encoder did not write (too large for the client, or after such a one in the same fetch; a write that
/// threw) so the membership gives them back uncounted.
/// </summary>
internal readonly struct MemberDeliverHandler(DeliveryEncoder encoder, MemberConsumer consumer) : IMessageHandler
{
    public void OnMessage(scoped in MessageView message)
    {
        try
        {
            encoder.Write(message);
        }
        catch
        {
            consumer.NoteUnsent(message.Offset, message.DeliveryCount);
            throw;
        }

        if (encoder.TooLarge)
        {
            consumer.NoteUnsent(message.Offset, message.DeliveryCount);
        }
    }
}
