namespace FastBroker.Ring;

/// <summary>
/// Consumes every event of a <see cref="ValueRingBuffer{T}"/> in sequence order, in batches, by reference.
/// Implement it on a <c>struct</c> (see <see cref="IEventHandler{T}"/> for why and for the callback contract).
/// </summary>
public interface IValueEventHandler<T>
    where T : struct
{
    /// <summary>Handles one event in place. Do not keep the reference: the slot is reused.</summary>
    /// <param name="data">The entry, by reference.</param>
    /// <param name="sequence">Its sequence.</param>
    /// <param name="endOfBatch">True for the last event currently available.</param>
    void OnEvent(ref T data, long sequence, bool endOfBatch);

    /// <summary>Called before each batch with the number of events in it.</summary>
    void OnBatchStart(long batchSize);

    /// <summary>Called on the processor thread before the first event.</summary>
    void OnStart()
    {
    }

    /// <summary>Called on the processor thread after the last event, when halting.</summary>
    void OnShutdown()
    {
    }

    /// <summary>Called when the wait strategy's timeout elapses with nothing to process.</summary>
    void OnTimeout(long sequence)
    {
    }
}
