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
    private readonly IEventProcessor _dispatcher;
    private readonly List<Thread> _threads = [];
    private volatile bool _stopping;

    public Pipeline(BrokerOptions options, IReplicator? replicator)
    {
        var wait = CreateWaitStrategy(options.WaitStrategy);
        Ring = RingBuffer<PublishEntry>.CreateMultiProducer(() => new PublishEntry(options.InputEntryBytes), options.InputRingSize, wait);
        _journaler = EventProcessors.Create(Ring, Ring.NewBarrier(), new JournalerHandler(this));
        var upstream = new List<Sequence> { _journaler.Sequence };
        if (replicator is not null)
        {
            _replicator = EventProcessors.Create(Ring, Ring.NewBarrier(), new ReplicatorHandler(replicator));
            upstream.Add(_replicator.Sequence);
        }

        _dispatcher = EventProcessors.Create(Ring, Ring.NewBarrier([.. upstream]), new DispatcherHandler(this));
        Ring.AddGatingSequences(_dispatcher.Sequence);
    }

    public RingBuffer<PublishEntry> Ring { get; }

    public bool Stopping => _stopping;

    /// <summary>The last ring sequence fully dispatched.</summary>
    public long DispatchedSequence => _dispatcher.Sequence.Value;

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

        _threads.Add(EventProcessors.StartThread(_dispatcher, "fastbroker-dispatcher"));
    }

    /// <summary>Hook called by the dispatcher after each batch (dispatcher thread).</summary>
    public void OnDispatched()
    {
    }

    /// <summary>Waits until everything published so far has been dispatched, then stops the threads.</summary>
    public bool Stop(TimeSpan timeout)
    {
        var deadline = Stopwatch.GetTimestamp() + (long)(timeout.TotalSeconds * Stopwatch.Frequency);
        var drained = true;
        var spin = new SpinWait();
        while (_dispatcher.Sequence.Value < Ring.Cursor)
        {
            if (Stopwatch.GetTimestamp() > deadline || _journaler.Fault is not null || _dispatcher.Fault is not null)
            {
                drained = false;
                break;
            }

            spin.SpinOnce(sleep1Threshold: 10);
        }

        _stopping = true;
        _journaler.Halt();
        _replicator?.Halt();
        _dispatcher.Halt();
        foreach (var t in _threads)
        {
            t.Join(timeout);
        }

        return drained;
    }
}
