namespace FastBroker.Ring;

/// <summary>Callback for <see cref="ValueEventPoller{T}.Poll{THandler}(ref THandler)"/>.</summary>
public interface IValueEventPollHandler<T>
    where T : struct
{
    /// <summary>Handles one event by reference; return false to stop this poll after it.</summary>
    bool OnEvent(ref T data, long sequence, bool endOfBatch);
}
