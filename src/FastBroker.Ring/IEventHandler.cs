namespace FastBroker.Ring;

/// <summary>
/// Consumes every event of a <see cref="RingBuffer{T}"/> in sequence order, in batches. Implement it on a
/// <c>struct</c> for the fast path: the processor is specialised for the struct type, so <see cref="OnEvent"/>
/// is a direct (usually inlined) call. A class implementation works too, at one interface call per event.
/// </summary>
/// <remarks>
/// The processor keeps its own copy of a struct handler and calls it in place, so state in the struct's fields
/// persists between calls (but is not visible through the caller's copy: keep shared state in a referenced
/// object). <see cref="OnStart"/>, <see cref="OnShutdown"/> and <see cref="OnTimeout"/> have empty defaults;
/// a struct that does not implement them is boxed for those (rare) calls only.
/// </remarks>
public interface IEventHandler<in T>
{
    /// <summary>Handles one event. Do not keep <paramref name="data"/>: the slot is reused.</summary>
    /// <param name="data">The entry.</param>
    /// <param name="sequence">Its sequence.</param>
    /// <param name="endOfBatch">True for the last event currently available: flush here.</param>
    void OnEvent(T data, long sequence, bool endOfBatch);

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

    /// <summary>Called when the wait strategy's timeout elapses with nothing to process; <paramref name="sequence"/> is the last processed.</summary>
    void OnTimeout(long sequence)
    {
    }
}
