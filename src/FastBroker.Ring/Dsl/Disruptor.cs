using FastBroker.Ring.Internal;

namespace FastBroker.Ring.Dsl;

/// <summary>
/// Wiring for a ring of class entries and its consumer graph:
/// <code>
/// var d = new Disruptor&lt;Order&gt;(() => new Order(), 1024, ProducerType.Multi);
/// d.HandleEventsWith(journaler, replicator).Then(dispatcher);
/// d.Start();
/// // publish through d.RingBuffer ...
/// d.Shutdown(TimeSpan.FromSeconds(5)); // drain, then halt
/// d.Dispose();
/// </code>
/// Struct handlers get a processor loop specialised for their type; threads are named <c>{name}-{stage}.{i}-{handler}</c>.
/// </summary>
/// <typeparam name="T">Entry type.</typeparam>
public sealed class Disruptor<T> : IDisposable
    where T : class
{
    private readonly ConsumerGraph _graph;
    private IExceptionHandler<T>? _exceptionHandler;

    /// <summary>Creates the ring (pre-allocated with <paramref name="factory"/>) and an empty consumer graph.</summary>
    /// <param name="factory">Makes each entry once.</param>
    /// <param name="ringBufferSize">Slot count, a power of two.</param>
    /// <param name="producerType">Single or multiple publishing threads.</param>
    /// <param name="waitStrategy">Default <see cref="HybridWaitStrategy"/>: spin, yield, then block (no CPU when idle).</param>
    /// <param name="name">Prefix of the consumer threads' names.</param>
    public Disruptor(Func<T> factory, int ringBufferSize, ProducerType producerType = ProducerType.Multi, IWaitStrategy? waitStrategy = null, string name = "ring")
    {
        RingBuffer = new RingBuffer<T>(factory, ringBufferSize, producerType, waitStrategy);
        _graph = new ConsumerGraph(RingBuffer, name);
    }

    /// <summary>The ring: publish through it.</summary>
    public RingBuffer<T> RingBuffer { get; }

    /// <summary>Exceptions that halted consumers so far.</summary>
    public IReadOnlyList<Exception> Faults => _graph.Faults.ToArray();

    /// <summary>The exception policy for consumers added after this call (default <see cref="ExceptionHandlers.LogAndHalt{T}"/>).</summary>
    public void SetDefaultExceptionHandler(IExceptionHandler<T> exceptionHandler) => _exceptionHandler = exceptionHandler;

    /// <summary>Adds one consumer that sees every event (first stage).</summary>
    public EventHandlerGroup<T> HandleEventsWith<TH1>(TH1 handler)
        where TH1 : struct, IEventHandler<T>
        => AddHandlers([], [Processor(handler, [])], [Label<TH1>()]);

    /// <summary>Adds two parallel consumers that each see every event (first stage).</summary>
    public EventHandlerGroup<T> HandleEventsWith<TH1, TH2>(TH1 handler1, TH2 handler2)
        where TH1 : struct, IEventHandler<T>
        where TH2 : struct, IEventHandler<T>
        => AddHandlers([], [Processor(handler1, []), Processor(handler2, [])], [Label<TH1>(), Label<TH2>()]);

    /// <summary>Adds three parallel consumers that each see every event (first stage).</summary>
    public EventHandlerGroup<T> HandleEventsWith<TH1, TH2, TH3>(TH1 handler1, TH2 handler2, TH3 handler3)
        where TH1 : struct, IEventHandler<T>
        where TH2 : struct, IEventHandler<T>
        where TH3 : struct, IEventHandler<T>
        => AddHandlers([], [Processor(handler1, []), Processor(handler2, []), Processor(handler3, [])], [Label<TH1>(), Label<TH2>(), Label<TH3>()]);

    /// <summary>Adds class handlers (one interface call per event) as parallel consumers of the first stage.</summary>
    public EventHandlerGroup<T> HandleEventsWith(params IEventHandler<T>[] handlers) => After([], handlers);

    /// <summary>Adds a worker pool of struct workers (each event to exactly one worker) as a first stage.</summary>
    public EventHandlerGroup<T> HandleEventsWithWorkerPool<TW>(params TW[] workers)
        where TW : struct, IWorkHandler<T>
        => AddPool([], WorkerPool.Create(RingBuffer, [], _exceptionHandler, workers), Label<TW>());

    /// <summary>Adds a worker pool of class workers as a first stage.</summary>
    public EventHandlerGroup<T> HandleEventsWithWorkerPool(params IWorkHandler<T>[] workers)
        => AddPool([], WorkerPool.Create(RingBuffer, [], _exceptionHandler, workers), "worker");

    /// <summary>Starts a thread per consumer. Add every consumer first.</summary>
    public RingBuffer<T> Start()
    {
        _graph.Start();
        return RingBuffer;
    }

    /// <summary>Halts every consumer now (worker pools drain what is readable) and waits up to <paramref name="timeout"/> (default 10 s) for the threads.</summary>
    /// <returns>False if a thread did not end in time.</returns>
    public bool Halt(TimeSpan? timeout = null) => _graph.Halt(timeout ?? TimeSpan.FromSeconds(10));

    /// <summary>Waits until every published event is processed by every consumer, then halts.</summary>
    /// <returns>False if the backlog did not clear or a thread did not end within <paramref name="timeout"/> (it is halted anyway).</returns>
    public bool Shutdown(TimeSpan timeout)
    {
        var until = DateTime.UtcNow + timeout;
        var spinner = default(SpinWait);
        while (_graph.HasBacklog() && DateTime.UtcNow < until)
        {
            spinner.SpinOnce(sleep1Threshold: 20);
        }

        var drained = !_graph.HasBacklog();
        var left = until - DateTime.UtcNow;
        return _graph.Halt(left > TimeSpan.FromSeconds(1) ? left : TimeSpan.FromSeconds(1)) && drained;
    }

    /// <summary>Halts (if started) and waits for the consumer threads.</summary>
    public void Dispose()
    {
        if (_graph.IsStarted)
        {
            Halt();
        }
    }

    internal EventHandlerGroup<T> After(Sequence[] barrierSequences, IEventHandler<T>[] handlers)
    {
        ArgumentNullException.ThrowIfNull(handlers);
        var consumers = new IConsumer[handlers.Length];
        var labels = new string[handlers.Length];
        for (var i = 0; i < handlers.Length; i++)
        {
            consumers[i] = Processor(handlers[i], barrierSequences);
            labels[i] = "handler";
        }

        return AddHandlers(barrierSequences, consumers, labels);
    }

    internal IConsumer Processor<TH>(TH handler, Sequence[] barrierSequences)
        where TH : IEventHandler<T>
        => new ProcessorConsumer(EventProcessors.Create(RingBuffer, RingBuffer.NewBarrier(barrierSequences), handler, _exceptionHandler));

    internal EventHandlerGroup<T> AddHandlers(Sequence[] barrierSequences, IConsumer[] consumers, string[] labels)
        => new(this, _graph.AddStage(consumers, labels, barrierSequences));

    internal EventHandlerGroup<T> AddPool(Sequence[] barrierSequences, WorkerPool pool, string label)
        => new(this, _graph.AddStage([pool], [label], barrierSequences));

    internal WorkerPool Pool<TW>(Sequence[] barrierSequences, TW[] workers)
        where TW : IWorkHandler<T>
        => WorkerPool.Create(RingBuffer, barrierSequences, _exceptionHandler, workers);

    internal static string Label<TH>() => typeof(TH).Name;
}
