using FastBroker.Ring.Internal;

namespace FastBroker.Ring;

/// <summary>
/// Builds batch event processors without the DSL. Pass a struct handler for a loop specialised to it (direct
/// calls); pass an <see cref="IEventHandler{T}"/>-typed reference for one interface call per event.
/// </summary>
public static class EventProcessors
{
    /// <summary>A processor that hands every event of <paramref name="ring"/> readable through <paramref name="barrier"/> to <paramref name="handler"/>.</summary>
    /// <remarks>Add its <see cref="IEventProcessor.Sequence"/> to the ring's gating sequences (or to a later stage's barrier).</remarks>
    public static IEventProcessor Create<T, THandler>(RingBuffer<T> ring, SequenceBarrier barrier, THandler handler, IExceptionHandler<T>? exceptionHandler = null)
        where T : class
        where THandler : IEventHandler<T>
    {
        ArgumentNullException.ThrowIfNull(ring);
        ArgumentNullException.ThrowIfNull(barrier);
        ArgumentNullException.ThrowIfNull(handler);
        return new BatchEventProcessor<T, RingEntries<T>, EventHandlerAdapter<T, THandler>>(
            ring.Entries, barrier, new EventHandlerAdapter<T, THandler>(handler), exceptionHandler);
    }

    /// <summary>A processor that hands every event of a struct ring to <paramref name="handler"/> by reference.</summary>
    public static IEventProcessor Create<T, THandler>(ValueRingBuffer<T> ring, SequenceBarrier barrier, THandler handler, IExceptionHandler<T>? exceptionHandler = null)
        where T : struct
        where THandler : IValueEventHandler<T>
    {
        ArgumentNullException.ThrowIfNull(ring);
        ArgumentNullException.ThrowIfNull(barrier);
        ArgumentNullException.ThrowIfNull(handler);
        return new BatchEventProcessor<T, RingEntries<T>, ValueEventHandlerAdapter<T, THandler>>(
            ring.Entries, barrier, new ValueEventHandlerAdapter<T, THandler>(handler), exceptionHandler);
    }

    /// <summary>Starts <paramref name="processor"/> on a named background thread and returns the thread.</summary>
    public static Thread StartThread(IEventProcessor processor, string name)
    {
        ArgumentNullException.ThrowIfNull(processor);
        var thread = new Thread(processor.Run) { IsBackground = true, Name = name };
        thread.Start();
        return thread;
    }
}
