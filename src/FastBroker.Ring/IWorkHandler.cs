namespace FastBroker.Ring;

/// <summary>
/// One worker of a <see cref="WorkerPool"/> over a <see cref="RingBuffer{T}"/>: each event goes to exactly one
/// worker of the pool. Implement on a struct for a direct call per event.
/// </summary>
public interface IWorkHandler<in T>
{
    /// <summary>Handles one event; no other worker of the pool sees it.</summary>
    void OnEvent(T data, long sequence);

    /// <summary>Called on the worker thread before the first event.</summary>
    void OnStart()
    {
    }

    /// <summary>Called on the worker thread when it stops.</summary>
    void OnShutdown()
    {
    }
}
