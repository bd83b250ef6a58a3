using System.Diagnostics;
using System.Runtime.CompilerServices;

namespace FastBroker.Ring.Internal;

/// <summary>
/// The consumer loop that sees every event: wait once per batch on the barrier, hand each event of the batch
/// to the handler, then publish the batch's end to its own sequence with one release store.
/// </summary>
/// <remarks>
/// <typeparamref name="TDataProvider"/> and <typeparamref name="THandler"/> are structs, so the JIT compiles one
/// specialised loop per handler type with direct, inlinable calls: no interface dispatch per event and no
/// runtime code generation (native-AOT safe). The wait strategy is called only when the barrier's fast check
/// finds nothing available, and signalled once per batch when it blocks. With the strategy's opt-in
/// <see cref="BatchCoalescing"/>, a batch smaller than its minimum is held for a short spin and then taken
/// together with whatever was published meanwhile.
/// </remarks>
internal sealed class BatchEventProcessor<T, TDataProvider, THandler> : IEventProcessor
    where TDataProvider : struct, IRefDataProvider<T>
    where THandler : struct, IRefEventHandler<T>
{
    private readonly Sequence _sequence = new();
    private readonly SequenceBarrier _barrier;
    private readonly IWaitStrategy _waitStrategy;
    private readonly bool _signal;
    private readonly int _coalesceBelow;
    private readonly long _coalesceTicks;
    private readonly TDataProvider _dataProvider;
    private readonly IExceptionHandler<T> _exceptionHandler;
    private THandler _handler;
    private int _running;
    private volatile Exception? _fault;

    public BatchEventProcessor(TDataProvider dataProvider, SequenceBarrier barrier, THandler handler, IExceptionHandler<T>? exceptionHandler)
    {
        _dataProvider = dataProvider;
        _barrier = barrier;
        _waitStrategy = barrier.WaitStrategy;
        _signal = _waitStrategy.IsBlockingStrategy;
        var coalescing = _waitStrategy.Coalescing;
        _coalesceBelow = coalescing.MinBatch;
        _coalesceTicks = coalescing.DelayTimestampTicks;
        _handler = handler;
        _exceptionHandler = exceptionHandler ?? ExceptionHandlers.LogAndHalt<T>();
    }

    public Sequence Sequence => _sequence;

    public bool IsRunning => Volatile.Read(ref _running) != ProcessorState.Idle;

    public Exception? Fault => _fault;

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
            ThrowHelper.ThrowAlreadyRunning("The event processor");
        }

        if (previous == ProcessorState.Halted)
        {
            // Halted before it ever ran: still give the handler its start/shutdown pair.
            NotifyStart();
            NotifyShutdown();
            Volatile.Write(ref _running, ProcessorState.Idle);
            return;
        }

        _barrier.ClearAlert();

        // A Halt() racing with start-up either left Halted (seen below) or alerts after the clear.
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
        var nextSequence = _sequence.Value + 1;
        var gapWait = default(SpinWait);
        while (true)
        {
            var available = _barrier.WaitFor(nextSequence);
            if (available >= nextSequence)
            {
                // _coalesceBelow is zero when coalescing is off, so this never holds then.
                if (available - nextSequence + 1 < _coalesceBelow)
                {
                    available = Coalesce(nextSequence, available);
                }

                var batchSize = available - nextSequence + 1;
                gapWait.Reset();
                try
                {
                    _handler.OnBatchStart(batchSize);
                    while (nextSequence <= available)
                    {
                        _handler.OnEvent(ref provider[nextSequence], nextSequence, nextSequence == available);
                        nextSequence++;
                    }

                    _sequence.SetValue(available);
                }
                catch (Exception ex)
                {
                    if (!HandleEventException(ex, nextSequence, provider[nextSequence]))
                    {
                        // Everything before the failed event was handled; the failed one was not. A downstream
                        // stage asleep on this sequence must hear of that progress: no one else will signal it.
                        _sequence.SetValue(nextSequence - 1);
                        if (_signal)
                        {
                            _waitStrategy.SignalAllWhenBlocking();
                        }

                        return;
                    }

                    _sequence.SetValue(nextSequence);
                    nextSequence++;
                }

                if (_signal)
                {
                    _waitStrategy.SignalAllWhenBlocking();
                }
            }
            else if (available == WaitResult.Alerted)
            {
                if (Volatile.Read(ref _running) != ProcessorState.Running)
                {
                    return;
                }
            }
            else if (available == WaitResult.TimedOut)
            {
                NotifyTimeout(nextSequence - 1);
            }
            else
            {
                // A multi-producer slot is claimed but not yet published: its producer is mid-write, or was
                // preempted mid-write, in which case it needs this core (spin briefly, then yield).
                gapWait.SpinOnce(sleep1Threshold: -1);
            }
        }
    }

    // Holds a small batch for the pause, spinning without touching the cursor or the slots, so the producer
    // keeps their cache lines and publishes more meanwhile; then takes everything available. A halt ends the
    // pause early (the batch is still handled).
    [MethodImpl(MethodImplOptions.NoInlining)]
    private long Coalesce(long nextSequence, long available)
    {
        var until = Stopwatch.GetTimestamp() + _coalesceTicks;
        while (Stopwatch.GetTimestamp() < until && !_barrier.IsAlerted)
        {
            Thread.SpinWait(1);
        }

        return Math.Max(available, _barrier.GetAvailable(nextSequence));
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

    private void NotifyTimeout(long sequence)
    {
        try
        {
            _handler.OnTimeout(sequence);
        }
        catch (Exception ex)
        {
            if (!HandleEventException(ex, sequence, default!))
            {
                Halt();
            }
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
