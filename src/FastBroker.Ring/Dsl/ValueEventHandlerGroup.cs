namespace FastBroker.Ring.Dsl;

/// <summary>A stage of a <see cref="ValueDisruptor{T}"/>'s consumer graph: the next stage reads only what every member of this one has finished.</summary>
public sealed class ValueEventHandlerGroup<T>
    where T : struct
{
    private readonly ValueDisruptor<T> _disruptor;
    private readonly Sequence[] _sequences;

    internal ValueEventHandlerGroup(ValueDisruptor<T> disruptor, Sequence[] sequences)
    {
        _disruptor = disruptor;
        _sequences = sequences;
    }

    /// <summary>The sequences of this stage's consumers.</summary>
    public IReadOnlyList<Sequence> Sequences => _sequences;

    /// <summary>Adds a consumer that reads after this stage.</summary>
    public ValueEventHandlerGroup<T> Then<TH1>(TH1 handler)
        where TH1 : struct, IValueEventHandler<T>
        => _disruptor.AddHandlers(_sequences, [_disruptor.Processor(handler, _sequences)], [ValueDisruptor<T>.Label<TH1>()]);

    /// <summary>Adds two parallel consumers that read after this stage.</summary>
    public ValueEventHandlerGroup<T> Then<TH1, TH2>(TH1 handler1, TH2 handler2)
        where TH1 : struct, IValueEventHandler<T>
        where TH2 : struct, IValueEventHandler<T>
        => _disruptor.AddHandlers(
            _sequences,
            [_disruptor.Processor(handler1, _sequences), _disruptor.Processor(handler2, _sequences)],
            [ValueDisruptor<T>.Label<TH1>(), ValueDisruptor<T>.Label<TH2>()]);

    /// <summary>Adds interface-typed handlers (one interface call per event) that read after this stage.</summary>
    public ValueEventHandlerGroup<T> Then(params IValueEventHandler<T>[] handlers) => _disruptor.After(_sequences, handlers);

    /// <summary>Adds a worker pool of struct workers that reads after this stage.</summary>
    public ValueEventHandlerGroup<T> ThenHandleEventsWithWorkerPool<TW>(params TW[] workers)
        where TW : struct, IValueWorkHandler<T>
        => _disruptor.AddPool(_sequences, _disruptor.Pool(_sequences, workers), ValueDisruptor<T>.Label<TW>());

    /// <summary>Adds a worker pool of interface-typed workers that reads after this stage.</summary>
    public ValueEventHandlerGroup<T> ThenHandleEventsWithWorkerPool(params IValueWorkHandler<T>[] workers)
        => _disruptor.AddPool(_sequences, _disruptor.Pool(_sequences, workers), "worker");

    /// <summary>A stage made of this one and <paramref name="other"/>: what follows reads after both.</summary>
    public ValueEventHandlerGroup<T> And(ValueEventHandlerGroup<T> other)
        => new(_disruptor, [.. _sequences, .. other._sequences]);

    /// <summary>A barrier that waits for this stage, for a consumer you run yourself.</summary>
    public SequenceBarrier AsSequenceBarrier() => _disruptor.RingBuffer.NewBarrier(_sequences);
}
