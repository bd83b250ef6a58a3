using System.Diagnostics;
using FastBroker.Ring;

namespace FastBroker.Engine;

/// <summary>
/// The broker's LMAX pipeline: a multi-producer input ring of pre-allocated <see cref="PublishEntry"/> slots, the
/// journaler (and, when configured, the replicator) in parallel, then the dispatcher gated on both. Three named
/// threads at most; the wait strategy is the broker's (non-spinning by default).
/// </summary>
internal sealed class Pipeline
{
    private readonly IEventProcessor _journaler;
    private readonly IEventProcessor? _replicator;
    private readonly IEventProcessor? _dispatcher;
    private readonly List<Thread> _threads = [];
    private volatile bool _stopping;

    public Pipeline(BrokerOptions options, IReplicator? replicator, ProducerRegistry producers)
    {
        var wait = CreateWaitStrategy(options.WaitStrategy);
        Ring = RingBuffer<PublishEntry>.CreateMultiProducer(() => new PublishEntry(options.InputEntryBytes), options.InputRingSize, wait);
        if (replicator is null)
        {
            // Without a replicator the dispatcher has only the journaler to wait for: fuse the two stages (one thread
            // fewer on a 2-core box, one cross-thread hand-off fewer on every message's path).
            _journaler = EventProcessors.Create(Ring, Ring.NewBarrier(), new JournalerHandler(this, new Dispatcher(), producers));
            Ring.AddGatingSequences(_journaler.Sequence);
            return;
        }

        _journaler = EventProcessors.Create(Ring, Ring.NewBarrier(), new JournalerHandler(this, null, producers));
        _replicator = EventProcessors.Create(Ring, Ring.NewBarrier(), new ReplicatorHandler(replicator));
        _dispatcher = EventProcessors.Create(Ring, Ring.NewBarrier(_journaler.Sequence, _replicator.Sequence), new DispatcherHandler(new Dispatcher()));
        Ring.AddGatingSequences(_dispatcher.Sequence);
    }

    public RingBuffer<PublishEntry> Ring { get; }

    public bool Stopping => _stopping;

    /// <summary>The last ring sequence fully dispatched.</summary>
    public long DispatchedSequence => (_dispatcher ?? _journaler).Sequence.Value;

    public static IWaitStrategy CreateWaitStrategy(BrokerWaitStrategy strategy) => strategy switch
    {
        BrokerWaitStrategy.Blocking => new BlockingWaitStrategy(),
        BrokerWaitStrategy.Yielding => new YieldingWaitStrategy(),
        BrokerWaitStrategy.BusySpin => new BusySpinWaitStrategy(),
        _ => new HybridWaitStrategy(),
    };

    public void Start()
    {
        _threads.Add(EventProcessors.StartThread(_journaler, "fastbroker-journaler"));
        if (_replicator is not null)
        {
            _threads.Add(EventProcessors.StartThread(_replicator, "fastbroker-replicator"));
        }

        if (_dispatcher is not null)
        {
            _threads.Add(EventProcessors.StartThread(_dispatcher, "fastbroker-dispatcher"));
        }
    }

    /// <summary>Waits until everything published so far has been dispatched, then stops the threads.</summary>
    public bool Stop(TimeSpan timeout)
    {
        var deadline = Stopwatch.GetTimestamp() + (long)(timeout.TotalSeconds * Stopwatch.Frequency);
        var drained = true;
        var spin = new SpinWait();
        while (DispatchedSequence < Ring.Cursor)
        {
            if (Stopwatch.GetTimestamp() > deadline || _journaler.Fault is not null || _dispatcher?.Fault is not null)
            {
                drained = false;
                break;
            }

            spin.SpinOnce(sleep1Threshold: 10);
        }

        _stopping = true;
        _journaler.Halt();
        _replicator?.Halt();
        _dispatcher?.Halt();
        foreach (var t in _threads)
        {
            t.Join(timeout);
        }

        return drained;
    }
}
