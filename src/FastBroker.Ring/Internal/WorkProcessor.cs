using System.Runtime.CompilerServices;

namespace FastBroker.Ring.Internal;

/// <summary>
/// One worker of a pool: claims the next sequence (or a short run of sequences it already knows are readable)
/// from the pool's shared work sequence with a CAS, waits for it to be published, and handles it. Each sequence
/// is claimed by exactly one worker.
/// </summary>
/// <remarks>
/// The worker's own sequence is set to <c>claimed - 1</c> before the claim, so the ring never laps a slot a
/// worker has claimed but not finished. On halt the pool fixes a drain target; a worker keeps claiming and
/// handling until its next claim lies beyond it, so everything readable at halt time is handled exactly once.
/// A worker stopped on its own (<see cref="Halt"/>, or a failure the exception policy rethrew) keeps the slots it
/// had claimed and not handled, and a later <see cref="Run"/> handles them first: no other worker can claim them.
/// </remarks>
internal sealed class WorkProcessor<T, TDataProvider, THandler> : IEventProcessor
    where TDataProvider : struct, IRefDataProvider<T>
    where THandler : struct, IRefWorkHandler<T>
{
    /// <summary>Most slots one claim takes: 16 amortises the CAS 16-fold while keeping the split among workers fine-grained.</summary>
    private const int MaxClaim = 16;

    private readonly Sequence _sequence = new();
    private readonly WorkerPoolState _pool;
    private readonly SequenceBarrier _barrier;
    private readonly IWaitStrategy _waitStrategy;
    private readonly bool _signal;
    private readonly TDataProvider _dataProvider;
    private readonly IExceptionHandler<T> _exceptionHandler;
    private THandler _handler;
    private int _running;
    private volatile Exception? _fault;

    // The claimed, unhandled run [_heldNext, _heldLast] a halt or a fatal failure left; only the worker's thread
    // touches these (Run calls are ordered by _running).
    private bool _holding;
    private long _heldNext;
    private long _heldLast;

    public WorkProcessor(TDataProvider dataProvider, SequenceBarrier barrier, WorkerPoolState pool, THandler handler, IExceptionHandler<T>? exceptionHandler)
    {
        _dataProvider = dataProvider;
        _barrier = barrier;
        _pool = pool;
        _waitStrategy = barrier.WaitStrategy;
        _signal = _waitStrategy.IsBlockingStrategy;
        _handler = handler;
        _exceptionHandler = exceptionHandler ?? ExceptionHandlers.LogAndHalt<T>();
    }

    public Sequence Sequence => _sequence;

    public bool IsRunning => Volatile.Read(ref _running) != ProcessorState.Idle;

    public Exception? Fault => _fault;

    /// <summary>
    /// Stops this worker now, without draining (each worker has its own barrier); <see cref="WorkerPool.Halt"/> drains
    /// instead. A later <see cref="Run"/> starts with the slots this worker had claimed.
    /// </summary>
    public void Halt()
    {
        Volatile.Write(ref _running, ProcessorState.Halted);
        _barrier.Alert();
    }

    public void Run()
    {
        var previous = Interlocked.CompareExchange(ref _running, ProcessorState.Running, ProcessorState.Idle);
        if (previous == ProcessorState.Running)
        {
            ThrowHelper.ThrowAlreadyRunning("The work processor");
        }

        if (previous == ProcessorState.Halted)
        {
            Volatile.Write(ref _running, ProcessorState.Idle);
            return;
        }

        // A rerun after Halt() finds the barrier still alerted. A Halt() racing with start-up either left Halted
        // (seen below) or alerts after the clear; a pool halt is seen through IsHalting, which is set before its alert.
        _barrier.ClearAlert();
        Interlocked.MemoryBarrier();
        try
        {
            if (NotifyStart() && Volatile.Read(ref _running) == ProcessorState.Running)
            {
                ProcessEvents();
            }
        }
        finally
        {
            NotifyShutdown();
            Volatile.Write(ref _running, ProcessorState.Idle);
        }
    }

    // Entered once and looped in for the processor's life: compile it fully optimised straight away instead
    // of starting in tier-0 and relying on on-stack replacement (no effect under native AOT).
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private void ProcessEvents()
    {
        var provider = _dataProvider;
        var workSequence = _pool.WorkSequence;
        var processed = true;
        var cachedAvailable = long.MinValue;
        var next = _sequence.Value;
        var last = next;
        var gapWait = default(SpinWait);
        if (_holding)
        {
            // Resume the run claimed before the last halt: its slots were readable then and are still (this
            // worker's sequence, next - 1, keeps the ring from lapping them).
            _holding = false;
            processed = false;
            next = _heldNext;
            last = _heldLast;
        }

        while (true)
        {
            if (processed)
            {
                processed = false;
                long current;
                do
                {
                    current = workSequence.Value;
                    next = current + 1;
                    _sequence.SetValue(current);

                    // Claim a run of slots this worker already knows are readable (at most MaxClaim, so the
                    // others still get a share), else just the next one: one CAS per run, not per event.
                    last = cachedAvailable > next ? Math.Min(cachedAvailable, current + MaxClaim) : next;
                }
                while (!workSequence.CompareAndSet(current, last));

                if (_signal)
                {
                    _waitStrategy.SignalAllWhenBlocking();
                }

                if (_pool.IsHalting && next > _pool.DrainTarget)
                {
                    return;
                }
            }

            if (cachedAvailable >= last)
            {
                var sequence = next;
                while (sequence <= last)
                {
                    try
                    {
                        for (; sequence <= last; sequence++)
                        {
                            _handler.OnEvent(ref provider[sequence], sequence);
                        }
                    }
                    catch (Exception ex)
                    {
                        if (!HandleEventException(ex, sequence, provider[sequence]))
                        {
                            Hold(sequence, last);
                            return;
                        }

                        sequence++;
                    }
                }

                processed = true;
                gapWait.Reset();
            }
            else if (_pool.IsHalting)
            {
                // Draining: the barrier is alerted, so poll without waiting on it.
                if (next > _pool.DrainTarget || Volatile.Read(ref _running) != ProcessorState.Running)
                {
                    return;
                }

                cachedAvailable = _barrier.GetAvailable(last);
                if (cachedAvailable < last)
                {
                    gapWait.SpinOnce(sleep1Threshold: -1);
                }
            }
            else
            {
                cachedAvailable = _barrier.WaitFor(last);
                if (cachedAvailable == WaitResult.Alerted && !_pool.IsHalting && Volatile.Read(ref _running) != ProcessorState.Running)
                {
                    Hold(next, last);
                    return;
                }

                if (cachedAvailable < last && !WaitResult.IsSentinel(cachedAvailable))
                {
                    // Claimed but unpublished multi-producer slot: spin briefly, then yield to its producer.
                    gapWait.SpinOnce(sleep1Threshold: -1);
                }
            }
        }
    }

    private void Hold(long next, long last)
    {
        _heldNext = next;
        _heldLast = last;
        _holding = true;
    }

    [MethodImpl(MethodImplOptions.NoInlining)]
    private bool HandleEventException(Exception ex, long sequence, T data)
    {
        try
        {
            _exceptionHandler.HandleEventException(ex, sequence, data);
            return true;
        }
        catch (Exception fatal)
        {
            _fault = fatal;
            Volatile.Write(ref _running, ProcessorState.Halted);
            return false;
        }
    }

    private bool NotifyStart()
    {
        var fatal = Lifecycle.NotifyStart(ref _handler, _exceptionHandler);
        if (fatal is null)
        {
            return true;
        }

        _fault = fatal;
        return false;
    }

    private void NotifyShutdown()
    {
        // Always notify (even after a fault); keep the first fault.
        var fatal = Lifecycle.NotifyShutdown(ref _handler, _exceptionHandler);
        _fault ??= fatal;
    }
}
