using FastBroker.Journal;

namespace FastBroker.Engine;

/// <summary>
/// <c>producers.state</c> in the data directory: every idempotent producer's highest stored sequence and where that
/// record is (topic, offset), so that a restart (or a promoted standby, which receives the file like the other state
/// files) knows producers whose records are older than the rescan of each topic's newest records. Without it, a
/// producer whose last records were pushed out of that rescan by other producers' traffic was unknown after a restart,
/// and its retry of a stored message was stored a second time.
/// </summary>
/// <remarks>
/// <para>
/// The journaler captures the registry (into arrays it reuses: nothing allocated per capture) after every
/// <see cref="Interval"/> records it wrote, and a pool thread writes the capture (a temporary file, then a rename: the
/// file is always whole). The broker writes one at open, after recovery, and one at close. Each capture also takes its
/// capture point: every persistent topic's next offset then (every record below it is in the capture), and the open
/// rescans each topic from there (<see cref="RescanLimit"/> records at most), so every record written after the
/// capture on disk lies within the rescan however far the file trails the journal (a standby's copy, sent at the
/// primary's heartbeats, may trail by far more than <see cref="Interval"/>). A file without capture points (version 5
/// or older) trails a restarted broker's own journal by at most <see cref="Interval"/> records plus one capture being
/// written, within the rescan of <see cref="BrokerOptions.ProducerRecoveryRecords"/> newest records of its topic, which
/// is at least 4 × <see cref="Interval"/> (<see cref="BrokerOptions.MinProducerRecoveryRecords"/>, enforced by
/// <see cref="BrokerOptions.Validate"/>; 0 reads neither the rescan nor the file's entries, only its epochs). The
/// rescan finds those, the file vouches for everything before. So a topic's retention does not pass the capture point
/// of the file last written while the topic holds an idempotent record at or after it, and asks for a capture then
/// (<see cref="RetentionFloor"/>): a producer whose records retention deleted is always in the file on disk.
/// </para>
/// <para>
/// Each entry is checked against the journal when it is loaded: the record at (topic, offset) must still carry that
/// producer and sequence. An entry that does not match (the journal was cut after a failover or lost its unsynced tail,
/// or the file came from a primary ahead of this standby's copy) falls back to the entry's previous place: the producer's
/// highest sequence and its record's place as the capture before the one that first saw the newest took them (kept
/// beside it until the producer's entry changes again, also by the open's own write, which takes each loaded entry as
/// the producer's latest capture: <see cref="ProducerRegistry.Vouch"/>). Every record the producer wrote after that capture lies within
/// the rescan of a journal that holds the previous record but lacks the newest (the two captures are at most one
/// capture interval and one write apart, as the rescan's bound above allows), so a journal that holds the previous
/// record vouches with it as with the newest: a standby promoted before its copy received a producer's newest record
/// still refuses that producer's retry of a stored record beyond the rescan. An entry neither of whose records matches
/// vouches for nothing, so the file can only make the broker refuse an unknown retry ("older than the oldest sequence known"),
/// never confirm one it does not hold. Such an entry says nothing of where the producer's records the journal holds
/// are, so when the file was also captured ahead of the journal (a capture point beyond its topic's end, or naming a
/// topic the node lacks: a copy two or more captures behind the file) the open rescans every topic from its first
/// record (<c>Broker.RecoverProducers</c>). A standby installs a received file only once its journal copies reach its
/// capture points (<c>StandbyReplica</c>), so a promotion normally rescans from the points.
/// </para>
/// <para>
/// The file also keeps the newest producer epoch of each id with the id's last use (<see cref="ProducerRegistry.CaptureEpochs"/>),
/// so a restart fences the older instances even when the new one has not written yet (no record carries its epoch),
/// for the epoch retention after that use, as <see cref="ProducerEpochFile"/> gives it. The writes at
/// open and close are durable (<see cref="DurableFile"/>: flushed, renamed, the directory synced); the journaler's
/// periodic captures are renamed over it without a disk flush (see <see cref="Write"/>), so after a power loss it may
/// hold older epochs or none: the epochs <see cref="Broker.InitProducer"/> answers are also in their own file, written
/// only durably and only when an epoch is given (<see cref="ProducerEpochFile"/>), and a restart takes the newest of
/// both. An epoch cannot be checked against the journal; it can only fence.
/// </para>
/// Format, little-endian: "FBPS", version 8, count (u32), then per producer id (u64), highest sequence (u64), offset
/// (i64), newest write (i64 Unix ms: a restart ages the producer by it, as the running broker's sweep does), the
/// previous place's sequence (u64) and offset (i64, -1: none), topic name length (u16) and UTF-8 name, the previous
/// place's topic name length (u16, 0 with none) and UTF-8 name; then the epoch count (u32) and per id with an epoch the id (u64), its newest epoch (u64)
/// and the Unix ms of the id's last use (i64: its newest write or INIT_PRODUCER; a restart that knows the id from this
/// file alone keeps the epoch for <see cref="BrokerOptions.ProducerEpochRetention"/> after it); then the capture's time
/// (i64 Unix ms of the stamp clock, taken after the stamps of every record below the points), the capture points'
/// count (u32, u32.MaxValue: not known) and per persistent topic its next offset (i64), its creation
/// (<see cref="TopicState.Incarnation"/>, u64, 0: none), name length (u16) and UTF-8 name; then the CRC32C of everything
/// before it (u32). Versions 1 (no newest write, no epochs), 2 (no epochs), 3 (epochs without last use: each taken as
/// last used when it was given, the Unix ms an epoch is at least), 4 (no previous place), 5 (no capture points), 6 (no
/// capture time) and 7 (no topic creation) are still read: version 1's producers are aged by their highest sequence's
/// record.
/// <para>
/// A capture point is taken for a topic only if it was taken in the topic's present creation: the point's creation and
/// the topic's are equal (a topic deleted and created again under its name, its offsets restarted at 0, has another,
/// also within one millisecond; the clock plays no part). Without a creation on either side (a version 7 file, a topic
/// created before <c>topic.meta</c> carried one), only if the record just below it (the journal's newest, if the point
/// is past its end) is stamped no later than the capture's time: one stamped later was written after the capture. A
/// point not taken: the open rescans that topic from its first record (logged).
/// </para>
/// </remarks>
internal sealed partial class ProducerCheckpoint : IThreadPoolWorkItem
{
    /// <summary>
    /// Where a capture was taken in a topic's journal (its next offset then) and which creation of the topic that journal
    /// is (<see cref="TopicState.Incarnation"/>; 0: not known, a file of version 7 or older or a topic without one).
    /// </summary>
    public readonly record struct CapturePoint(long Next, ulong Incarnation);

    /// <summary>Records written between two captures.</summary>
    public const int Interval = 8192;

    public const string FileName = "producers.state";

    private const uint Magic = 0x53504246; // "FBPS"
    private const uint Version = 8;

    /// <summary>
    /// The most records of one topic the open rescans (or <see cref="BrokerOptions.ProducerRecoveryRecords"/> if larger),
    /// however far behind the topic's journal end the capture point is.
    /// </summary>
    public const int RescanLimit = 1 << 24;

    private readonly string _path;
    private readonly object _writeLock = new();
    private readonly Action<string>? _log;
    private ProducerRegistry.Entry[] _capture = new ProducerRegistry.Entry[16];
    private int _captured;
    private (ulong Producer, ulong Epoch, long Seen)[] _epochs = new (ulong, ulong, long)[16];
    private ProducerRegistry? _registry; // the one whose capture is queued (its epochs are taken when the file is written)
    private byte[] _buffer = new byte[4096];
    private int _writing; // 1 while a capture waits for or is in its write
    private bool _closed; // under _writeLock
    private string? _lastFailure;
    private int _epochCount; // under _writeLock: how many of _epochs the file being written holds
    private readonly Func<TopicState[]>? _topics;
    private (TopicState Topic, long Next, ulong Incarnation)[] _points = new (TopicState, long, ulong)[16];
    private int _pointCount = -1; // how many of _points the capture holds; -1: no topics given, capture points unknown
    private readonly TimeProvider _clock;
    private long _capturedAtMs; // the stamp clock's Unix ms when the capture points were taken

    /// <param name="dataDirectory">Where the file is.</param>
    /// <param name="log">Where a failed write is reported.</param>
    /// <param name="topics">
    /// The topics, whose journals' next offsets each capture takes as its capture points (null: the file names none, and
    /// the open rescans the fixed number of newest records): an array the journaler iterates without allocating
    /// (<see cref="TopicRegistry.Snapshot"/>; enumerating the registry's <see cref="TopicRegistry.All"/> copied its
    /// dictionary's values at each capture).
    /// </param>
    /// <param name="clock">
    /// The clock the journaler stamps records with (<see cref="BrokerOptions.StampClock"/>): each capture takes its time,
    /// which no record a topic held at the capture is stamped after (null: the system clock).
    /// </param>
    public ProducerCheckpoint(string dataDirectory, Action<string>? log, Func<TopicState[]>? topics = null, TimeProvider? clock = null)
    {
        _path = Path.Combine(dataDirectory, FileName);
        _log = log;
        _topics = topics;
        _clock = clock ?? TimeProvider.System;
    }

    /// <summary>
    /// Journaler thread, once <see cref="Interval"/> records were written since the last capture:
    /// captures the registry and queues its write. False (nothing captured) while the previous capture is still being
    /// written: the journaler tries again with its next record.
    /// </summary>
    public bool TryCapture(ProducerRegistry producers)
    {
        if (Interlocked.CompareExchange(ref _writing, 1, 0) != 0)
        {
            return false;
        }

        Volatile.Write(ref _asked, 0); // this capture answers every ask made so far (RetentionFloor)
        _captured = producers.Capture(ref _capture);
        CapturePoints();
        _registry = producers;
        ThreadPool.UnsafeQueueUserWorkItem(this, preferLocal: false);
        return true;
    }

    /// <summary>Any thread, with the registry quiescent (at open, after recovery; at close, after the pipeline stopped).</summary>
    public void WriteNow(ProducerRegistry producers, bool closing)
    {
        var spin = new SpinWait();
        while (Interlocked.CompareExchange(ref _writing, 1, 0) != 0)
        {
            spin.SpinOnce(); // a capture's write in progress: it ends on its own
        }

        try
        {
            _captured = producers.Capture(ref _capture);
            CapturePoints();
            _registry = producers;
            Write(closing);
        }
        finally
        {
            Volatile.Write(ref _writing, 0);
        }
    }

    /// <summary>
    /// With the capture (the journaler's thread, or the registry quiescent): each persistent topic's next offset, where
    /// the capture was taken in its journal, with the topic's creation (<see cref="TopicState.Incarnation"/>). The journaler registers each record it appends before it counts it, so
    /// every record below that offset is in the capture; the open rescans from there.
    /// </summary>
    private void CapturePoints()
    {
        if (_topics is null)
        {
            return;
        }

        var n = 0;
        foreach (var topic in _topics())
        {
            if (topic.Journal is not { } journal)
            {
                continue;
            }

            if (n == _points.Length)
            {
                Array.Resize(ref _points, n * 2);
            }

            _points[n++] = (topic, journal.NextOffset, topic.Incarnation);
        }

        _pointCount = n;

        // After the records' stamps (the journaler stamps a batch before it writes it): a record stamped later was
        // written after this capture, so a topic whose record just below its point is is not the one captured there.
        _capturedAtMs = _clock.GetUtcNow().ToUnixTimeMilliseconds();
    }

    void IThreadPoolWorkItem.Execute()
    {
        try
        {
            Write(closing: false, durable: false);
        }
        finally
        {
            Interlocked.Exchange(ref _writing, 0); // a full fence: the journaler's TryCapture that failed before it is seen below
        }

        if (Volatile.Read(ref _asked) != 0)
        {
            // Asked while this write ran: the journaler's TryCapture found it busy, and it may be idle now (no batch
            // to start, so no capture) while a retention pass waits for one.
            Wake?.Invoke();
        }
    }
}
