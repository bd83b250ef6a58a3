namespace FastBroker;

/// <summary>
/// Receives messages from <see cref="Subscription.Fetch{THandler}(int, ref THandler)"/> and friends. Implement it on a struct for the
/// fast path (the fetch loop is specialised for it, no interface call per message). The view is valid only during
/// the call: for persistent topics it points straight into the journal mapping.
/// </summary>
public interface IMessageHandler
{
    /// <summary>Handles one message.</summary>
    void OnMessage(scoped in MessageView message);
}
