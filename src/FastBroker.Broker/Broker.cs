using FastBroker.Engine;

namespace FastBroker;

/// <summary>
/// An embedded FastBroker: topics, fan-out subscriptions and work-queue groups over an LMAX pipeline
/// (input ring → journaler → dispatcher) and memory-mapped journals, in this process, no sockets.
/// </summary>
/// <example>
/// <code>
/// await using var broker = await Broker.OpenAsync(BrokerOptions.Default with { DataDirectory = "data" });
/// using var sub = broker.Subscribe("orders.*", new SubscriptionOptions { Start = StartPosition.Earliest });
/// await broker.PublishAsync("orders.eu", "hello"u8.ToArray());
/// await foreach (var m in sub.ReadAllAsync()) { Console.WriteLine(m.PayloadText); break; }
/// </code>
/// </example>
public sealed partial class Broker : IAsyncDisposable
{
    private readonly BrokerOptions _options;
    private readonly TopicRegistry _topics;
    private readonly Pipeline _pipeline;
    private readonly ProducerRegistry _producers;
    private readonly string _replyTopic = "_reply." + Guid.NewGuid().ToString("N");
    private readonly BrokerMetrics _metrics;
    private readonly List<Subscription> _subscriptions = [];
    private readonly SubscriptionTotalsTable _subscriptionTotals = new(); // under _gate, with _subscriptions
    private readonly HashSet<string> _openDurableNames = new(StringComparer.Ordinal); // under _gate
    private readonly Dictionary<(string Topic, string Group), WorkQueueGroup> _groups = [];
    private readonly Dictionary<(string Topic, string Group), long> _dormantGroupFloors; // state on disk, as opened
    private readonly List<string> _stateRecoveries = []; // groups' and durable subscriptions' state brought back to the journals
    private readonly object _gate = new();
    private readonly Timer _timer;
    private readonly ProducerCheckpoint _producerCheckpoint;
    private readonly ProducerEpochFile _producerEpochs;
    private readonly StateFileFlusher _stateFlusher = new();
    private readonly object _timerLock = new();
    private readonly DataDirectoryLock? _directoryLock; // null: the caller holds it (a failover pair's node)
    private int _timerPeriodMs; // 0 = not started; under _timerLock
    private int _state; // 0 open, 1 closing, 2 closed

    private Broker(BrokerOptions options, DataDirectoryLock? directoryLock)
    {
        _options = options;
        _directoryLock = directoryLock;
        _stateFlusher.Log = options.Log;
        _topics = new TopicRegistry(options);
        _topics.LoadAll(); // closes the topics it opened when it throws
        try
        {
            _dormantGroupFloors = RecoverGroupStates(_topics.All, _stateRecoveries);
            RecoverPositions(options.DataDirectory, _topics, _stateRecoveries);
            foreach (var t in _topics.SubscribeToCreations(AttachRetentionFloor))
            {
                AttachRetentionFloor(t);
            }

            _producers = new ProducerRegistry(options.ProducerWindow, Milliseconds(options.ProducerIdleTimeout), Milliseconds(options.ProducerExpiry), Milliseconds(options.ProducerEpochRetention));
            RecoverProducers();
            _producerCheckpoint = new ProducerCheckpoint(options.DataDirectory, options.Log, () => _topics.Snapshot, options.StampClock);
            _producerEpochs = new ProducerEpochFile(options.DataDirectory, options.Log, Math.Max(Milliseconds(options.ProducerEpochRetention), Milliseconds(options.ProducerExpiry)), options.StampClock);
            _producerCheckpoint.WriteNow(_producers, closing: false);
            _producerEpochs.TryPersist(_producers); // compacted (ids past the epoch retention left out), never emptied
            _producers.AttachCheckpoint(_producerCheckpoint);
            _pipeline = new Pipeline(options, _producers);
            _producerCheckpoint.Wake = WakeJournaler;
            _metrics = new BrokerMetrics(this, options.MeterName);
            _timer = new Timer(static s => ((Broker)s!).OnTimer(), this, Timeout.Infinite, Timeout.Infinite);
        }
        catch (Exception e)
        {
            ReleaseUnbuilt(e);
            throw;
        }
    }

    /// <summary>The settings the broker runs with.</summary>
    public BrokerOptions Options => _options;

    /// <summary>
    /// What recovery changed when the broker opened, one line per topic, group or subscription, prefixed by the topic's
    /// name: what journal recovery dropped (torn tails after a crash), and work-queue group state and durable
    /// subscription positions that were ahead of their journal (after a power loss cut the journal's tail, or a
    /// failover to a standby that lacked the records) and were brought back to the journal's end; and state files that
    /// hold no state or are not a group's or a subscription's (damaged), with what the group or subscription does instead.
    /// </summary>
    public IReadOnlyList<string> RecoveryReports => [.. _topics.Recoveries.Select(r => $"{r.Topic}: {r.Report}"), .. _stateRecoveries];

    /// <summary>
    /// Opens (recovering if needed) or creates the broker's data directory and starts its threads. The broker locks the
    /// directory first (an exclusive flock on its <c>broker.lock</c>, held until <see cref="DisposeAsync"/>), so a second
    /// broker on the same directory, in this process or another, is refused at once.
    /// </summary>
    /// <remarks>
    /// An open that fails releases everything it opened before it throws its exception: the topics' journals (their
    /// mappings, descriptors and locks), the journaler thread and the timer if they started, and the directory's lock.
    /// The same directory can be opened again in this process, once what refused the open is repaired, and failed
    /// attempts leak nothing. (What the open changed on disk before it failed, such as the recovery of a torn journal
    /// tail, stays.)
    /// </remarks>
    /// <exception cref="BrokerException">
    /// <see cref="BrokerErrorCode.ResourceExhausted"/>: another broker has the data directory open (the message names the
    /// directory and, when the system tells it, the holding process); also a resource the open ran short of.
    /// <see cref="BrokerErrorCode.StorageError"/>: a file of the data directory the open cannot use (a topic's, damaged
    /// or unreadable; <c>producers.epochs</c> unreadable), naming it and the cause.
    /// </exception>
    public static ValueTask<Broker> OpenAsync(BrokerOptions? options = null, CancellationToken cancellationToken = default)
    {
        options ??= BrokerOptions.Default;
        options.Validate();
        cancellationToken.ThrowIfCancellationRequested();
        return ValueTask.FromResult(Open(options, null));
    }

    /// <summary>
    /// Opens the broker; with a <paramref name="replication"/> gate (the primary of a failover pair) standby-mode
    /// confirmations wait for the standby's acks and the gate's replicator is woken as records become readable. With
    /// <paramref name="directoryLocked"/> the caller holds the data directory's lock (<see cref="DataDirectoryLock"/>,
    /// a failover pair's node through all its roles) and the broker takes none. A failure releases what the open opened
    /// (<see cref="OpenAsync"/>); the caller's lock stays held. <paramref name="startFault"/> is a test's seam: called
    /// once the broker has started, its exception fails the open.
    /// </summary>
    internal static Broker Open(BrokerOptions options, ReplicationGate? replication, bool directoryLocked = false, Action<Broker>? startFault = null)
    {
        Directory.CreateDirectory(options.DataDirectory);
        var directoryLock = directoryLocked ? null : DataDirectoryLock.Acquire(options.DataDirectory);
        Broker? broker = null;
        try
        {
            broker = new Broker(options, directoryLock); // releases what it opened when it throws
            if (replication is not null)
            {
                broker.Replication = replication;
                broker._pipeline.Dispatcher.Gate = replication;
                // Before any reader can find a topic (a created one too): with a consumer visibility other than local,
                // its consumers read only what the standby holds from the first read on.
                broker._topics.Adopt = replication.Adopt;
                foreach (var t in broker._topics.All)
                {
                    replication.Adopt(t);
                }
            }

            broker._pipeline.Start();
            broker.StartTimer(broker._producerEpochs.RefreshCheckPeriod); // the producers.epochs refresh: every broker
            if (replication is not null)
            {
                broker.StartTimer(StandbyTimerPeriod(options.TimerResolution, replication.AckTimeout));
            }

            broker.DeclareTopics();
            startFault?.Invoke(broker);
            return broker;
        }
        catch (Exception e)
        {
            broker?.ReleaseFailedStart(e);
            directoryLock?.Dispose();
            throw;
        }
    }

    /// <summary>Creates a topic with the given settings (or returns quietly if it exists with the same settings).</summary>
    /// <exception cref="BrokerException"><see cref="BrokerErrorCode.InvalidName"/>, <see cref="BrokerErrorCode.TopicConflict"/>.</exception>
    public void CreateTopic(string name, TopicOptions? options = null)
    {
        ThrowIfClosed();
        _topics.Create(name, options ?? _options.DefaultTopicOptions, mustBeNew: true);
    }

    /// <summary>True when the topic exists.</summary>
    public bool TopicExists(string name) => _topics.TryGet(name, out _);

    /// <summary>A snapshot of every topic, subscription and group with their counters and lags.</summary>
    public BrokerSnapshot GetSnapshot()
    {
        var topics = _topics.All.OrderBy(t => t.Name, StringComparer.Ordinal)
            .Select(t => new TopicSnapshot(t.Name, t.Persistent, t.Tail, t.Head, Volatile.Read(ref t.Published), Volatile.Read(ref t.PublishedBytes), t.Expired) { TransientSlotBytes = t.Transient?.SlotBytes ?? 0, DamagedRecords = t.DamagedRecords, DamagedRecordsAtLeast = t.DamagedRecordsAtLeast, FirstDamagedOffset = t.FirstDamagedOffset })
            .ToList();
        List<SubscriptionSnapshot> subs;
        List<SubscriptionTotals> totals;
        List<GroupSnapshot> groups;
        lock (_gate)
        {
            subs = [.. _subscriptions.Select(s => s.Snapshot())];
            totals = _subscriptionTotals.Totals(subs);
            groups = [.. _groups.Values.Select(g => g.Snapshot())];
        }

        return new BrokerSnapshot(topics, subs, groups) { Producers = _producers.Count, SubscriptionTotals = totals };
    }

    /// <summary>
    /// Drains the pipeline (everything accepted is journaled and confirmed), flushes and closes every file, then releases
    /// the data directory's lock (its <c>broker.lock</c> stays).
    /// </summary>
    public async ValueTask DisposeAsync()
    {
        if (Interlocked.CompareExchange(ref _state, 1, 0) != 0)
        {
            return;
        }

        _pipeline.Room.WakeAll(); // publishers waiting for room see the close now, not after the drain
        try
        {
            await CloseAsync().ConfigureAwait(false);
        }
        finally
        {
            _directoryLock?.Dispose();
        }
    }

    private async ValueTask CloseAsync()
    {
        await _timer.DisposeAsync().ConfigureAwait(false); // waits for a tick in progress: no timer task fails after it
        Volatile.Read(ref _timerFailureLog)?.EndAll(_options.Log); // the counts of timer failures held back, not lost
        _pipeline.Stop(_options.ShutdownTimeout);
        _pipeline.FlushLog(); // the count of storage refusals held back, not lost
        _producerEpochs.TryPersist(_producers); // each id's last use as of the close
        _producerEpochs.Close();
        _producerCheckpoint.WriteNow(_producers, closing: true);
        foreach (var t in _topics.All)
        {
            if (t.Durability is { } d)
            {
                await d.StopAsync(_options.ShutdownTimeout).ConfigureAwait(false);
            }
        }

        Subscription[] subs;
        WorkQueueGroup[] groups;
        lock (_gate)
        {
            subs = [.. _subscriptions];
            groups = [.. _groups.Values];
            _subscriptions.Clear();
            _groups.Clear();
        }

        foreach (var s in subs)
        {
            s.CloseFromBroker();
        }

        foreach (var g in groups)
        {
            g.Dispose();
        }

        FlushStateFileLogs(); // every subscription and group has closed: no line of them comes after
        _metrics.Dispose();
        _topics.Dispose();
        Volatile.Write(ref _state, 2);
    }

    internal bool IsOpen => Volatile.Read(ref _state) == 0;

    internal TopicRegistry Topics => _topics;

    /// <summary>The ack-mode gate when this broker is the primary of a failover pair, else null.</summary>
    internal ReplicationGate? Replication { get; private set; }

    /// <summary>Msyncs the group state and position files of <c>Fsynced</c> topics after their acks and commits.</summary>
    internal StateFileFlusher StateFlusher => _stateFlusher;

    /// <summary>The idempotent-producer windows (the replicator reads nothing here; the standby rebuilds them from headers).</summary>
    internal ProducerRegistry Producers => _producers;

    /// <summary>Writes a line to <see cref="BrokerOptions.Log"/>, if set.</summary>
    internal void Log(string line) => _options.Log?.Invoke(line);

    internal void ThrowIfClosed()
    {
        if (Volatile.Read(ref _state) != 0)
        {
            ThrowClosed();
        }
    }

    internal void Forget(Subscription subscription)
    {
        lock (_gate)
        {
            if (_subscriptions.Remove(subscription))
            {
                // Its counters now: a delivery still unwinding may add a few after, which then go uncounted (never
                // counted twice, and never a drop: a snapshot sees the subscription either open or folded in here).
                _subscriptionTotals.Closed(subscription.Pattern.Text, subscription.Options.DurableName, subscription.Delivered, subscription.Expired, subscription.Filtered, subscription.Missed);
            }
        }
    }

    /// <summary>
    /// Takes <paramref name="durableName"/> for a subscription being opened: one open subscription per durable name,
    /// as one position file has one writer (two kept their own index over it, so their commits wrote duplicate entries
    /// and a restart resumed from whichever came last in the file).
    /// </summary>
    /// <exception cref="BrokerException"><see cref="BrokerErrorCode.DurableNameInUse"/>: another open subscription has it.</exception>
    internal void ClaimDurableName(string durableName)
    {
        lock (_gate)
        {
            if (!_openDurableNames.Add(durableName))
            {
                throw new BrokerException(BrokerErrorCode.DurableNameInUse, $"durable subscription '{durableName}' is open in another subscription; dispose that one first (one consumer per durable name)");
            }
        }
    }

    /// <summary>Gives <paramref name="durableName"/> back once its subscription has closed its position file.</summary>
    internal void ReleaseDurableName(string durableName)
    {
        lock (_gate)
        {
            _openDurableNames.Remove(durableName);
        }
    }

    private void AttachRetentionFloor(TopicState topic)
    {
        if (topic.Journal is { } journal)
        {
            var name = topic.Name;
            journal.RetentionFloor = () => RetentionFloorOf(name);
        }
    }

    /// <summary>
    /// Publishes an input-ring slot that carries nothing, so that an idle journaler starts a batch and takes the
    /// <c>producers.state</c> capture a retention pass asked for (<see cref="ProducerCheckpoint.Wake"/>). A full ring
    /// needs none: the journaler has batches to start.
    /// </summary>
    private void WakeJournaler()
    {
        var ring = _pipeline.Ring;
        if (Volatile.Read(ref _state) == 0 && ring.TryNext(out var sequence))
        {
            ring[sequence].FillWake();
            ring.Publish(sequence);
        }
    }

    private static void ThrowClosed() => throw new BrokerException(BrokerErrorCode.Closed, "the broker is closed");

    /// <summary>A producer age limit in milliseconds; <see cref="Timeout.InfiniteTimeSpan"/> = never (long.MaxValue).</summary>
    private static long Milliseconds(TimeSpan limit) => limit == Timeout.InfiniteTimeSpan ? long.MaxValue : (long)limit.TotalMilliseconds;

    /// <summary>The producer id, sequence and epoch (0 = none: a 16-byte header) of an idempotent record.</summary>
    private static (ulong Producer, ulong Sequence, ulong Epoch)? ProducerOf(in Journal.JournalRecord record) =>
        ((ushort)record.Flags & HasProducerFlag) != 0
        && ReservedHeaders.TryGetBrokerWritten(record.Headers, ProducerHeaderName, out var value)
        && value.Length is 16 or 24
            ? (System.Buffers.Binary.BinaryPrimitives.ReadUInt64LittleEndian(value),
                System.Buffers.Binary.BinaryPrimitives.ReadUInt64LittleEndian(value[8..]),
                value.Length == 24 ? System.Buffers.Binary.BinaryPrimitives.ReadUInt64LittleEndian(value[16..]) : 0)
            : null;
}
