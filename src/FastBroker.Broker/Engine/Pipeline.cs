using System.Diagnostics;
using FastBroker.Ring;

namespace FastBroker.Engine;

/// <summary>
/// The broker's LMAX pipeline: a multi-producer input ring of pre-allocated <see cref="PublishEntry"/> slots, the
/// journaler, which dispatches each batch after committing it. One named thread; the wait strategy is the broker's
/// (non-spinning by default).
/// </summary>
internal sealed class Pipeline
{
    private readonly IEventProcessor _journaler;
    private readonly List<Thread> _threads = [];
    private readonly Action<string>? _log;
    private readonly LogRateLimit _storageRefusals;
    private volatile bool _stopping;

    public Pipeline(BrokerOptions options, ProducerRegistry producers)
    {
        _log = options.Log;
        _storageRefusals = new LogRateLimit(LogRateLimit.DefaultInterval, options.LogClock);
        var wait = CreateWaitStrategy(options.WaitStrategy);
        Ring = RingBuffer<PublishEntry>.CreateMultiProducer(() => new PublishEntry(options.InputEntryBytes), options.InputRingSize, wait);

        // The dispatcher has only the journaler to wait for, so the two stages are fused (one thread fewer on a
        // 2-core box, one cross-thread hand-off fewer on every message's path). Replication to a standby does not
        // add a stage: the replicator follows each topic's durable end like a reader (it ships bytes from the
        // mapping, which exist only once the journaler has written them), and standby-mode confirmations wait in
        // the ReplicationGate instead of holding up the ring.
        Dispatcher = new Dispatcher();
        _journaler = EventProcessors.Create(Ring, Ring.NewBarrier(), new JournalerHandler(this, Dispatcher, producers, options.StampClock));
        Ring.AddGatingSequences(_journaler.Sequence);
    }

    public RingBuffer<PublishEntry> Ring { get; }

    /// <summary>The dispatch work (run on the journaler thread after each batch's commit).</summary>
    public Dispatcher Dispatcher { get; }

    public bool Stopping => _stopping;

    /// <summary>Publishers waiting for room in the full ring, woken by <see cref="ReleaseBatch"/>.</summary>
    public RoomWaiters Room { get; } = new();

    /// <summary>
    /// The journaler, at the end of a batch it has dispatched (its slots cleared, nothing of them read again): hands the
    /// slots back to the ring now, and wakes the publishers waiting for room if there are any. The processor stores the
    /// same sequence again once the handler returns; stored here first, as Disruptor's sequence-reporting handlers do, so
    /// that a waiter woken re-checks after the slots are free. The fence pairs with <see cref="RoomWaiters.Enter"/>
    /// (see its remarks): one fence per batch, which the default (blocking) wait strategy pays after each batch anyway.
    /// </summary>
    public void ReleaseBatch(long sequence)
    {
        _journaler.Sequence.SetValueVolatile(sequence);
        Room.WakeIfAny();
    }

    /// <summary>
    /// The journaler refused a publish because of its storage (a full disk, a journal error, no descriptor for a new
    /// segment): the publisher gets the error, and the broker's log says so too, at most once per
    /// <see cref="LogRateLimit.DefaultInterval"/> (a disk that stays full refuses every publish).
    /// </summary>
    public void NoteStorageRefusal(string reason) => _storageRefusals.Write(_log, "publish refused: " + reason);

    /// <summary>At close: the storage refusals held back since the last one logged, with their count.</summary>
    public void FlushLog() => _storageRefusals.Flush(_log);

    /// <summary>The last ring sequence fully dispatched.</summary>
    public long DispatchedSequence => _journaler.Sequence.Value;

    public static IWaitStrategy CreateWaitStrategy(BrokerWaitStrategy strategy) => strategy switch
    {
        BrokerWaitStrategy.Blocking => new BlockingWaitStrategy(),
        BrokerWaitStrategy.Yielding => new YieldingWaitStrategy(),
        BrokerWaitStrategy.BusySpin => new BusySpinWaitStrategy(),
        _ => new HybridWaitStrategy(),
    };

    public void Start() => _threads.Add(EventProcessors.StartThread(_journaler, "fastbroker-journaler"));

    /// <summary>Waits until everything published so far has been dispatched, then stops the threads.</summary>
    public bool Stop(TimeSpan timeout)
    {
        var deadline = Stopwatch.GetTimestamp() + (long)(timeout.TotalSeconds * Stopwatch.Frequency);
        var drained = true;
        var spin = new SpinWait();
        while (DispatchedSequence < Ring.Cursor)
        {
            if (Stopwatch.GetTimestamp() > deadline || _journaler.Fault is not null)
            {
                drained = false;
                break;
            }

            spin.SpinOnce(sleep1Threshold: 10);
        }

        _stopping = true;
        _journaler.Halt();
        foreach (var t in _threads)
        {
            t.Join(timeout);
        }

        return drained;
    }
}
