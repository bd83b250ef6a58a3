namespace FastBroker.Ring.Dsl;

/// <summary>A stage of a <see cref="Disruptor{T}"/>'s consumer graph: the next stage reads only what every member of this one has finished.</summary>
public sealed class EventHandlerGroup<T>
    where T : class
{
    private readonly Disruptor<T> _disruptor;
    private readonly Sequence[] _sequences;

    internal EventHandlerGroup(Disruptor<T> disruptor, Sequence[] sequences)
    {
        _disruptor = disruptor;
        _sequences = sequences;
    }

    /// <summary>The sequences of this stage's consumers.</summary>
    public IReadOnlyList<Sequence> Sequences => _sequences;

    /// <summary>Adds a consumer that reads after this stage.</summary>
    public EventHandlerGroup<T> Then<TH1>(TH1 handler)
        where TH1 : struct, IEventHandler<T>
        => _disruptor.AddHandlers(_sequences, [_disruptor.Processor(handler, _sequences)], [Disruptor<T>.Label<TH1>()]);

    /// <summary>Adds two parallel consumers that read after this stage.</summary>
    public EventHandlerGroup<T> Then<TH1, TH2>(TH1 handler1, TH2 handler2)
        where TH1 : struct, IEventHandler<T>
        where TH2 : struct, IEventHandler<T>
        => _disruptor.AddHandlers(
            _sequences,
            [_disruptor.Processor(handler1, _sequences), _disruptor.Processor(handler2, _sequences)],
            [Disruptor<T>.Label<TH1>(), Disruptor<T>.Label<TH2>()]);

    /// <summary>Adds class handlers that read after this stage.</summary>
    public EventHandlerGroup<T> Then(params IEventHandler<T>[] handlers) => _disruptor.After(_sequences, handlers);

    /// <summary>Adds a worker pool of struct workers that reads after this stage.</summary>
    public EventHandlerGroup<T> ThenHandleEventsWithWorkerPool<TW>(params TW[] workers)
        where TW : struct, IWorkHandler<T>
        => _disruptor.AddPool(_sequences, _disruptor.Pool(_sequences, workers), Disruptor<T>.Label<TW>());

    /// <summary>Adds a worker pool of class workers that reads after this stage.</summary>
    public EventHandlerGroup<T> ThenHandleEventsWithWorkerPool(params IWorkHandler<T>[] workers)
        => _disruptor.AddPool(_sequences, _disruptor.Pool(_sequences, workers), "worker");

    /// <summary>A stage made of this one and <paramref name="other"/>: what follows reads after both.</summary>
    public EventHandlerGroup<T> And(EventHandlerGroup<T> other)
        => new(_disruptor, [.. _sequences, .. other._sequences]);

    /// <summary>A barrier that waits for this stage, for a consumer you run yourself.</summary>
    public SequenceBarrier AsSequenceBarrier() => _disruptor.RingBuffer.NewBarrier(_sequences);
}
