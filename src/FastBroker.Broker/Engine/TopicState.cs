using FastBroker.Journal;
using FastBroker.Threading;

namespace FastBroker.Engine;

/// <summary>
/// A topic at run time: its settings, its log (a journal for persistent topics, an in-memory ring for transient
/// ones), its counters, and the readers to wake when messages arrive.
/// </summary>
internal sealed partial class TopicState : IDisposable
{
    private readonly object _gate = new();
    private AsyncSignal[] _listeners = [];
    private InlineDelivery[] _inline = [];
    private long _expired;
    private ExpiredOffsets? _expiredOffsets;

    public TopicState(string name, TopicOptions options, string directory, JournalLog? journal, TransientLog? transient, ulong incarnation = 0)
    {
        Name = name;
        Incarnation = incarnation;
        NameUtf8 = System.Text.Encoding.UTF8.GetBytes(name);
        Options = options;
        Directory = directory;
        Journal = journal;
        Transient = transient;
    }

    public string Name { get; }

    /// <summary>The name as UTF-8 (what the wire protocol carries).</summary>
    public byte[] NameUtf8 { get; }

    public TopicOptions Options { get; }

    /// <summary>
    /// This creation of the topic: a random nonzero id its <c>topic.meta</c> carries from the creation on (a standby's
    /// copy carries the primary's), another for a topic deleted and created again under its name; 0 for a topic created
    /// before <c>topic.meta</c> carried one.
    /// </summary>
    public ulong Incarnation { get; }

    public string Directory { get; }

    /// <summary>The journal of a persistent topic.</summary>
    public JournalLog? Journal { get; }

    /// <summary>The in-memory log of a transient topic.</summary>
    public TransientLog? Transient { get; }

    public bool Persistent => Journal is not null;

    /// <summary>Set for fsynced persistent topics: confirms and wakes readers once group commits complete.</summary>
    public DurabilityNotifier? Durability { get; set; }

    /// <summary>On the primary of a failover pair: the standby's positions and the confirmations waiting for them.</summary>
    public ReplicaAcks? Replica { get; set; }

    /// <summary>On the primary of a failover pair: wakes the replicator when records become readable.</summary>
    public ReplicationGate? Replication { get; set; }

    /// <summary>
    /// Test seam: called on the publisher's thread before an input-ring slot's buffer grows for a message of this topic
    /// (the one allocation a publisher may make between reserving its slot and publishing it), so a test can make that
    /// allocation fail as an <see cref="OutOfMemoryException"/> would. Null outside tests.
    /// </summary>
    public Action? SlotGrowthFault { get; set; }

    /// <summary>Messages accepted (journaler thread writes, anyone reads).</summary>
    public long Published;

    /// <summary>Payload bytes accepted.</summary>
    public long PublishedBytes;

    /// <summary>The dispatcher's batch number when it last woke this topic's readers (dispatcher thread only).</summary>
    public long LastWakeBatch = -1;

    /// <summary>The journaler's batch number when it last touched this topic (journaler thread only).</summary>
    public long LastAppendBatch = -1;

    /// <summary>
    /// The offset of the newest idempotent record the journaler wrote to this topic's journal since the broker opened
    /// (-1: none), stored before the record is appended (so a reader that sees the journal's next offset past it sees
    /// it too): while it is at or after the capture point of the last <c>producers.state</c> written, retention is held
    /// at that point (<see cref="ProducerCheckpoint.RetentionFloor"/>). Journaler writes, retention passes read.
    /// </summary>
    public long NewestProducerRecord = -1;

    /// <summary>
    /// Messages that expired before delivery: skipped by a consumer (work-queue group or subscription) because their TTL
    /// had passed, each counted once however many consumers skip it.
    /// </summary>
    public long Expired => Volatile.Read(ref _expired);

    /// <summary>The next offset to be given (= head of the topic).</summary>
    public long Head => Journal?.NextOffset ?? Transient!.Head;

    /// <summary>The end readers may read up to (exclusive): durable per the topic's policy.</summary>
    public long ReadableEnd => Journal?.DurableOffset ?? Transient!.Head;

    /// <summary>The oldest offset still kept.</summary>
    public long Tail => Journal?.FirstOffset ?? Transient!.Tail;

    /// <summary>
    /// A consumer skips the message at <paramref name="offset"/> because it expired: counted unless another consumer
    /// already did (<see cref="ExpiredOffsets"/>). Any consumer's thread; never on the path of a delivered message.
    /// </summary>
    public void CountExpired(long offset)
    {
        if ((Volatile.Read(ref _expiredOffsets) ?? CreateExpiredOffsets()).TryClaim(offset))
        {
            Interlocked.Increment(ref _expired);
        }
    }

    /// <summary>Registers a reader's signal, set whenever new messages become readable.</summary>
    public void AddListener(AsyncSignal signal) => Add(ref _listeners, signal);

    /// <summary>Unregisters a reader's signal.</summary>
    public void RemoveListener(AsyncSignal signal) => Remove(ref _listeners, signal);

    /// <summary>Registers an inline subscription, delivered on the thread that makes messages readable.</summary>
    public void AddInline(InlineDelivery delivery) => Add(ref _inline, delivery);

    /// <summary>Unregisters an inline subscription.</summary>
    public void RemoveInline(InlineDelivery delivery) => Remove(ref _inline, delivery);

    /// <summary>
    /// New records are readable (dispatcher thread once per batch per topic, or the durability notifier for fsynced
    /// topics; allocation-free): wakes every reader and runs the inline subscriptions, unless the topic's
    /// <see cref="VisibleEnd"/> keeps the new records from them (the raise of the bound wakes them then), and tells the
    /// replicator of a failover pair.
    /// </summary>
    public void WakeListeners()
    {
        if (NewRecordsVisible())
        {
            WakeReaders();
        }

        Replication?.RecordsReadable(this);
    }

    /// <summary>
    /// Wakes every reader and runs the inline subscriptions, on the calling thread (allocation-free): what
    /// <see cref="WakeListeners"/> does for readers, and what a raise of <see cref="VisibleEnd"/> does.
    /// </summary>
    public void WakeReaders()
    {
        var listeners = Volatile.Read(ref _listeners);
        for (var i = 0; i < listeners.Length; i++)
        {
            listeners[i].Set();
        }

        var inline = Volatile.Read(ref _inline);
        for (var i = 0; i < inline.Length; i++)
        {
            inline[i].Deliver();
        }
    }

    /// <summary>
    /// Closes the journal; the durability loop of an <c>Fsynced</c> topic is ended first (<see cref="DurabilityNotifier.Abandon"/>):
    /// the broker's close stopped it already, a failed open or creation did not.
    /// </summary>
    public void Dispose()
    {
        Durability?.Abandon();
        Journal?.Dispose();
    }

    // Copy-on-write under the gate: the dispatcher reads the arrays without a lock, once per batch.
    private void Add<T>(ref T[] array, T item)
        where T : class
    {
        lock (_gate)
        {
            array = [.. array, item];
        }
    }

    private void Remove<T>(ref T[] array, T item)
        where T : class
    {
        lock (_gate)
        {
            array = Array.FindAll(array, x => !ReferenceEquals(x, item));
        }
    }

    /// <summary>Once per topic, with its first expired message (16 KiB): topics without TTL traffic never pay for it.</summary>
    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.NoInlining)]
    private ExpiredOffsets CreateExpiredOffsets()
    {
        Interlocked.CompareExchange(ref _expiredOffsets, new ExpiredOffsets(), null);
        return _expiredOffsets!;
    }
}
