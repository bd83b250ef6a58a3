namespace FastBroker.Ring;

/// <summary>
/// A consumer loop over a ring: a batch event processor (sees every event) or one worker of a
/// <see cref="WorkerPool"/>. Run it on a dedicated thread; <see cref="Halt"/> stops it from any thread.
/// </summary>
public interface IEventProcessor
{
    /// <summary>The last sequence this processor has finished with; downstream consumers and producers gate on it.</summary>
    Sequence Sequence { get; }

    /// <summary>True from <see cref="Run"/> until it returns.</summary>
    bool IsRunning { get; }

    /// <summary>The exception that halted this processor, if one did.</summary>
    Exception? Fault { get; }

    /// <summary>Processes events on the calling thread until halted. Throws if already running.</summary>
    void Run();

    /// <summary>Asks the processor to stop; <see cref="Run"/> returns shortly after (after the current batch).</summary>
    void Halt();
}
