namespace FastBroker.Client.Internal;

/// <summary>
/// Where a handler subscription's deliveries go: the reader loop calls <see cref="Deliver"/> through this base class
/// (one virtual call), and <see cref="MessageSink{THandler}"/> calls the handler specialised for its type, so a struct
/// handler is neither boxed nor called through its interface.
/// </summary>
internal abstract class MessageSink
{
    /// <summary>Calls the handler; returns what it threw, or null.</summary>
    public abstract Exception? Deliver(scoped in ClientMessageView message);
}

/// <summary>The <see cref="MessageSink"/> of a handler of type <typeparamref name="THandler"/>.</summary>
internal sealed class MessageSink<THandler>(THandler handler) : MessageSink
    where THandler : IClientMessageHandler
{
    // Not readonly: a mutable struct handler keeps its state between calls.
    private THandler _handler = handler;

    public override Exception? Deliver(scoped in ClientMessageView message)
    {
        try
        {
            _handler.OnMessage(in message);
            return null;
        }
        catch (Exception ex)
        {
            return ex;
        }
    }
}
