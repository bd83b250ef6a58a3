namespace FastBroker.Server.Internal;

/// <summary>
/// The struct handler a membership's fetch calls per delivery: writes it like <see cref="DeliverHandler"/>, and notes
/// the ones the encoder did not write so the membership gives them back uncounted: those after a message too large for
/// the client in the same fetch, and one whose write threw. The too-large message itself is nacked with the reason: no
/// member with that frame limit can ever take it, so like a consumer that fails on it, it uses up its deliveries and
/// reaches the dead-letter topic instead of ending every membership that fetches it for ever (a leave counts only the
/// first delivery the member was handed, which need not be this one).
/// </summary>
internal readonly struct MemberDeliverHandler(DeliveryEncoder encoder, MemberConsumer consumer) : IMessageHandler
{
    public void OnMessage(scoped in MessageView message)
    {
        if (encoder.TooLarge)
        {
            consumer.NoteUnsent(message.Offset, message.DeliveryCount); // behind the too-large one: never written
            return;
        }

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
            consumer.NoteTooLarge(message.Offset, message.DeliveryCount, encoder.TooLargeReason);
        }
    }
}
