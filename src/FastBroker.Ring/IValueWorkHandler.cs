namespace FastBroker.Ring;

/// <summary>One worker of a <see cref="WorkerPool"/> over a <see cref="ValueRingBuffer{T}"/> (see <see cref="IWorkHandler{T}"/>).</summary>
public interface IValueWorkHandler<T>
    where T : struct
{
    /// <summary>Handles one event in place; no other worker of the pool sees it.</summary>
    void OnEvent(ref T data, long sequence);

    /// <summary>Called on the worker thread before the first event.</summary>
    void OnStart()
    {
    }

    /// <summary>Called on the worker thread when it stops.</summary>
    void OnShutdown()
    {
    }
}
