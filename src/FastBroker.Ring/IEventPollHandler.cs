namespace FastBroker.Ring;

/// <summary>Callback for <see cref="EventPoller{T}.Poll{THandler}(ref THandler)"/>.</summary>
public interface IEventPollHandler<in T>
{
    /// <summary>Handles one event; return false to stop this poll after it.</summary>
    bool OnEvent(T data, long sequence, bool endOfBatch);
}
