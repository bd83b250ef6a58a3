using FastBroker.Ring.Internal;

namespace FastBroker.Ring;

/// <summary>
/// A group of workers sharing one ring position: every event is handled by exactly one worker (a work queue).
/// Gate the ring on <see cref="GetWorkerSequences"/>. <see cref="Halt"/> drains: every event readable when it
/// was called is handled before the workers stop.
/// </summary>
/// <remarks>
/// Each claim is one CAS on a shared counter, so a pool trades per-event cost for parallelism: use it when
/// handling an event costs far more than ~50 ns. Workers run on named background threads.
/// </remarks>
public sealed class WorkerPool : IConsumer
{
    private readonly WorkerPoolState _state;
    private readonly IEventProcessor[] _workers;
    private readonly SequenceBarrier[] _barriers;
    private readonly Sequence[] _sequences;
    private Thread[]? _threads;

    private WorkerPool(WorkerPoolState state, IEventProcessor[] workers, SequenceBarrier[] barriers)
    {
        _state = state;
        _workers = workers;
        _barriers = barriers;
        _sequences = new Sequence[workers.Length + 1];
        for (var i = 0; i < workers.Length; i++)
        {
            _sequences[i] = workers[i].Sequence;
        }

        _sequences[workers.Length] = state.WorkSequence;
    }

    /// <summary>The workers, for running them on threads of your own instead of <see cref="Start"/>.</summary>
    public IReadOnlyList<IEventProcessor> Workers => _workers;

    /// <summary>True while any worker runs.</summary>
    public bool IsRunning => _workers.Any(w => w.IsRunning);

    Sequence[] IConsumer.Sequences => _sequences;

    IEnumerable<Exception> IConsumer.Faults => _workers.Select(w => w.Fault).OfType<Exception>();

    /// <summary>Creates a pool over a ring of class entries. Struct worker types get a specialised loop each.</summary>
    /// <param name="ring">The ring.</param>
    /// <param name="dependentSequences">Upstream consumers the workers read after; empty = straight off the cursor.</param>
    /// <param name="exceptionHandler">Exception policy; default <see cref="ExceptionHandlers.LogAndHalt{T}"/>.</param>
    /// <param name="workers">One handler per worker thread.</param>
    public static WorkerPool Create<T, TWorker>(RingBuffer<T> ring, Sequence[] dependentSequences, IExceptionHandler<T>? exceptionHandler, params TWorker[] workers)
        where T : class
        where TWorker : IWorkHandler<T>
    {
        ArgumentNullException.ThrowIfNull(ring);
        Validate(workers);
        var state = new WorkerPoolState();
        var processors = new IEventProcessor[workers.Length];
        var barriers = new SequenceBarrier[workers.Length];
        for (var i = 0; i < workers.Length; i++)
        {
            barriers[i] = ring.NewBarrier(dependentSequences ?? []);
            processors[i] = new WorkProcessor<T, RingEntries<T>, WorkHandlerAdapter<T, TWorker>>(
                ring.Entries, barriers[i], state, new WorkHandlerAdapter<T, TWorker>(workers[i]), exceptionHandler);
        }

        return new WorkerPool(state, processors, barriers);
    }

    /// <summary>Creates a pool over a ring of struct entries.</summary>
    /// <param name="ring">The ring.</param>
    /// <param name="dependentSequences">Upstream consumers the workers read after; empty = straight off the cursor.</param>
    /// <param name="exceptionHandler">Exception policy; default <see cref="ExceptionHandlers.LogAndHalt{T}"/>.</param>
    /// <param name="workers">One handler per worker thread.</param>
    public static WorkerPool Create<T, TWorker>(ValueRingBuffer<T> ring, Sequence[] dependentSequences, IExceptionHandler<T>? exceptionHandler, params TWorker[] workers)
        where T : struct
        where TWorker : IValueWorkHandler<T>
    {
        ArgumentNullException.ThrowIfNull(ring);
        Validate(workers);
        var state = new WorkerPoolState();
        var processors = new IEventProcessor[workers.Length];
        var barriers = new SequenceBarrier[workers.Length];
        for (var i = 0; i < workers.Length; i++)
        {
            barriers[i] = ring.NewBarrier(dependentSequences ?? []);
            processors[i] = new WorkProcessor<T, RingEntries<T>, ValueWorkHandlerAdapter<T, TWorker>>(
                ring.Entries, barriers[i], state, new ValueWorkHandlerAdapter<T, TWorker>(workers[i]), exceptionHandler);
        }

        return new WorkerPool(state, processors, barriers);
    }

    /// <summary>The workers' sequences plus the pool's claim counter: add these as the ring's gating sequences.</summary>
    public Sequence[] GetWorkerSequences() => (Sequence[])_sequences.Clone();

    /// <summary>Starts one named background thread per worker (<c>{threadName}-{i}</c>).</summary>
    public void Start(string threadName = "ring-worker")
    {
        if (_threads is not null)
        {
            ThrowHelper.ThrowAlreadyRunning("The worker pool");
        }

        _threads = new Thread[_workers.Length];
        for (var i = 0; i < _workers.Length; i++)
        {
            _threads[i] = new Thread(_workers[i].Run) { IsBackground = true, Name = $"{threadName}-{i}" };
            _threads[i].Start();
        }
    }

    /// <summary>
    /// Stops the pool after every event readable now has been handled (returns at once; <see cref="Join"/> waits).
    /// For a pool reading the cursor of a multi-producer ring, slots already claimed are waited for too.
    /// </summary>
    public void Halt()
    {
        if (_state.IsHalting)
        {
            return;
        }

        _state.BeginHalt(_barriers[0].DependentValue);
        foreach (var barrier in _barriers)
        {
            barrier.Alert();
        }
    }

    /// <summary>Waits for every worker thread started by <see cref="Start"/> to end.</summary>
    public bool Join(TimeSpan timeout)
    {
        if (_threads is null)
        {
            return true;
        }

        var deadline = DateTime.UtcNow + timeout;
        foreach (var t in _threads)
        {
            var left = deadline - DateTime.UtcNow;
            if (!t.Join(left > TimeSpan.Zero ? left : TimeSpan.Zero))
            {
                return false;
            }
        }

        return true;
    }

    /// <summary><see cref="Halt"/> then <see cref="Join"/>.</summary>
    public bool DrainAndHalt(TimeSpan timeout)
    {
        Halt();
        return Join(timeout);
    }

    private static void Validate<TWorker>(TWorker[] workers)
    {
        ArgumentNullException.ThrowIfNull(workers);
        if (workers.Length == 0)
        {
            throw new ArgumentException("A worker pool needs at least one worker.", nameof(workers));
        }
    }
}
