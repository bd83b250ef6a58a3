namespace FastBroker.Engine;

/// <summary>
/// The idempotent-producer window: per producer id, the offsets of its most recent sequences, so that a retried
/// message (same producer id and sequence, after a reconnect or a broker restart) is confirmed with its original
/// offset instead of being written twice. Owned by the journaler thread (the single writer decides, so there is
/// no race between a message and its retry); rebuilt at start from the producer header every idempotent record
/// carries (<see cref="Broker.ProducerHeaderName"/>), so the window survives restarts because it lives in the journal.
/// </summary>
/// <remarks>
/// <para>
/// <see cref="NextSequence"/> is the one call from other threads (a session answering INIT_PRODUCER): the journaler
/// adds and removes producers under <c>_addLock</c> (once per producer id, never per message) and publishes each
/// producer's highest sequence with a volatile write, so a reader holding the lock sees a consistent dictionary and a
/// highest sequence that every record before it has reached.
/// </para>
/// <para>
/// Idle producers do not accumulate (<see cref="Sweep"/>): one that wrote nothing for <c>idleMs</c> keeps only its
/// newest sequence (a retry of an older one is then refused as too old, never stored again), and one that wrote nothing
/// for <c>expiryMs</c> is forgotten (its newest epoch stays, for the epoch retention after its last use: <see cref="Forget"/>). Ages are judged by record timestamps (the journaler's batch clock, Unix ms), so a
/// restart that rebuilds the window from the journal forgets the same producers (<see cref="Expired"/>).
/// </para>
/// </remarks>
internal sealed partial class ProducerRegistry(int window, long idleMs = long.MaxValue, long expiryMs = long.MaxValue, long epochRetentionMs = long.MaxValue)
{
    /// <summary>Producers the sweep looks at per call (at most one call per millisecond of the batch clock).</summary>
    private const int SweepStep = 64;

    /// <summary>Epochs of ids without a window kept before those past the retention are dropped (<see cref="PruneFencesLocked"/>).</summary>
    private const int FencesBeforePrune = 1024;

    private readonly Dictionary<ulong, Producer> _producers = [];

    // Under _addLock: the newest epoch of each id not (or no longer) in _producers, and when the id was last in use (Unix
    // ms): an instance that never wrote, a producer the sweep forgot, an id a restart knows from the epochs files only.
    private readonly Dictionary<ulong, (ulong Epoch, long Seen)> _fences = [];
    private readonly long _retentionMs = Math.Max(epochRetentionMs, expiryMs);
    private int _pruneAt = FencesBeforePrune; // under _addLock: the fence count at which PruneFencesLocked runs next
    private long _nextPruneMs = long.MinValue; // under _addLock: from when it runs with FencesBeforePrune kept
    private readonly object _addLock = new();
    private Producer[] _all = new Producer[16]; // every producer, for the sweep; Producer.Slot is its index
    private int _allCount;
    private int _sweepAt;
    private long _sweptAt = long.MinValue;
    private ProducerCheckpoint? _checkpoint;
    private long _sinceCapture; // journaler: records written since the last checkpoint capture

    /// <summary>Outcome of <see cref="Check"/>.</summary>
    public enum Verdict
    {
        /// <summary>Not seen: append it.</summary>
        New,

        /// <summary>Stored before: confirm the original offset.</summary>
        Duplicate,

        /// <summary>Older than the window: cannot tell, refuse.</summary>
        TooOld,

        /// <summary>An epoch below the producer's newest: a replaced instance, refuse.</summary>
        Fenced,

        /// <summary>An epoch this broker cannot have given (as <see cref="Init(ulong, ulong, ulong)"/> judges a resume): refuse.</summary>
        NeverGiven,
    }

    public int Count
    {
        get
        {
            lock (_addLock)
            {
                return _producers.Count;
            }
        }
    }

    /// <summary>
    /// Any thread: the sequence a producer (re)starting with <paramref name="producerId"/> should use next — one past
    /// the highest stored for it, or 0 when this broker knows no record of it. Messages still in the input ring when
    /// this is asked are not counted.
    /// </summary>
    public ulong NextSequence(ulong producerId)
    {
        lock (_addLock)
        {
            return _producers.TryGetValue(producerId, out var p) ? p.Highest + 1 : 0;
        }
    }

    /// <summary>
    /// Journaler: what to do with <paramref name="sequence"/> of <paramref name="producerId"/> published with
    /// <paramref name="epoch"/> (0 = none: neither fenced nor fencing) at <paramref name="now"/> (the batch clock, Unix ms).
    /// An epoch above the newest of the id and more than <see cref="MaxEpochLeadMs"/> ahead of <paramref name="now"/> was
    /// never given (the rule <see cref="Init(ulong, ulong, ulong)"/> applies to a resume): taken, it would fence every
    /// later instance. Looked at only for an epoch above the window's: a new instance's first message.
    /// </summary>
    public Verdict Check(ulong producerId, ulong sequence, out TopicState? topic, out long offset, out ulong highest, ulong epoch = 0, long now = 0)
    {
        topic = null;
        offset = -1;
        highest = 0;
        if (!_producers.TryGetValue(producerId, out var p))
        {
            if (epoch != 0)
            {
                lock (_addLock)
                {
                    var fence = _fences.GetValueOrDefault(producerId).Epoch;
                    if (epoch < fence)
                    {
                        return Verdict.Fenced;
                    }

                    if (epoch > fence && CannotHaveGiven(epoch, (ulong)Math.Max(now, 0)))
                    {
                        return Verdict.NeverGiven;
                    }
                }
            }

            return Verdict.New;
        }

        highest = p.Highest;
        if (epoch != 0)
        {
            if (epoch < p.Fence || epoch < p.WindowEpoch)
            {
                return Verdict.Fenced;
            }

            if (epoch > p.WindowEpoch)
            {
                // A new instance's first message: its sequences are its own (Record starts its window). Above every epoch
                // known (the window's and the newest given), it must be one this broker could have given.
                return epoch > p.Fence && CannotHaveGiven(epoch, (ulong)Math.Max(now, 0)) ? Verdict.NeverGiven : Verdict.New;
            }
        }

        if (sequence > p.Highest)
        {
            return Verdict.New;
        }

        if (p.TryFind(sequence, out topic, out offset))
        {
            return Verdict.Duplicate;
        }

        // Absent but newer than the oldest sequence known and within the window: a message that failed (never stored)
        // being retried. Older than every sequence known (after a restart, older than what the rescan found): cannot
        // tell whether it was stored, so refuse rather than risk a duplicate.
        return p.Highest - sequence < (ulong)window && sequence >= p.Lowest ? Verdict.New : Verdict.TooOld;
    }

    /// <summary>
    /// Whether a record written at <paramref name="timestamp"/> (Unix ms) is too old, at <paramref name="now"/>, to make
    /// its producer known again: the restart rescan and the checkpoint skip such records, as the sweep forgot their producer.
    /// </summary>
    public bool Expired(long timestamp, long now) => expiryMs != long.MaxValue && now - timestamp >= expiryMs;

    /// <summary>
    /// Journaler, at the start of each batch with its clock (Unix ms); does something at most once per millisecond.
    /// Looks at the next <see cref="SweepStep"/> producers, round robin: one idle for <c>idleMs</c> shrinks to its newest
    /// sequence, one idle for <c>expiryMs</c> is forgotten (its epoch kept). A whole round over N producers takes N / 64 milliseconds of
    /// traffic; while nothing is published nothing is swept, and nothing grows either.
    /// </summary>
    public void Sweep(long now)
    {
        if (now == _sweptAt || _allCount == 0)
        {
            return;
        }

        _sweptAt = now;
        for (var n = Math.Min(SweepStep, _allCount); n > 0; n--)
        {
            if (_sweepAt >= _allCount)
            {
                _sweepAt = 0;
            }

            var p = _all[_sweepAt];
            var idle = now - p.LastWrite; // negative if the clock went back: not idle
            if (idle >= expiryMs)
            {
                Forget(p, now); // the last producer takes its slot: looked at next
                continue;
            }

            if (idle >= idleMs)
            {
                p.Shrink();
            }

            _sweepAt++;
        }
    }

    /// <summary>Before the pipeline starts: where the journaler's captures go.</summary>
    public void AttachCheckpoint(ProducerCheckpoint checkpoint) => _checkpoint = checkpoint;

    /// <summary>
    /// Records written between two captures while the registry knows no producer: each capture moves the topics' capture
    /// points, from which an open after a crash rescans (<see cref="ProducerCheckpoint.RescanLimit"/> records at most),
    /// so a broker with no idempotent producer rescans at most this many records after a crash, not everything written
    /// since it opened.
    /// </summary>
    public const int IdleCaptureInterval = 1 << 20;

    /// <summary>
    /// Journaler, for each record written (idempotent or not: each pushes older ones out of a topic's rescan): captures
    /// a checkpoint once <see cref="ProducerCheckpoint.Interval"/> were written since the last (<see
    /// cref="IdleCaptureInterval"/> while no producer is known), also inside a batch (a batch may be longer; a capture
    /// naming a record its commit then never made durable is ignored when loaded).
    /// </summary>
    public void CountWrite()
    {
        if (++_sinceCapture >= ProducerCheckpoint.Interval && _checkpoint is { } checkpoint
            && (_producers.Count > 0 || _sinceCapture >= IdleCaptureInterval) && checkpoint.TryCapture(this))
        {
            _sinceCapture = 0;
        }
    }

    /// <summary>
    /// Journaler, at each batch's start: the capture a retention pass asked for (<see cref="ProducerCheckpoint.RetentionFloor"/>:
    /// the topic's retention waits at the capture point of the file on disk), now rather than after up to
    /// <see cref="ProducerCheckpoint.Interval"/> more records. One volatile read per batch when none is asked.
    /// </summary>
    public void CaptureIfAsked()
    {
        if (_checkpoint is { Asked: true } checkpoint && checkpoint.TryCapture(this))
        {
            _sinceCapture = 0;
        }
    }

    /// <summary>One producer in a <see cref="ProducerCheckpoint"/>: its highest stored sequence and that record's place.</summary>
    /// <remarks>
    /// <paramref name="LastWrite"/>: the Unix ms of its newest write (a failed lower sequence retried later may be newer
    /// than the highest's record), by which a restart ages it. <paramref name="Previous"/>: the place an earlier capture
    /// gave it, the one just before the capture that first saw its present one (no topic: none), which a journal lacking
    /// the present one's record (a standby's copy not yet holding it) may still hold.
    /// </remarks>
    public readonly record struct Entry(ulong Producer, ulong Highest, TopicState Topic, long Offset, long LastWrite, Place Previous = default);

    /// <summary>Where a producer's sequence is stored, as a capture took it (<see cref="Topic"/> null: nothing).</summary>
    public readonly record struct Place(ulong Sequence, TopicState? Topic, long Offset);

    /// <summary>
    /// Journaler (or with the registry quiescent): copies every producer's highest sequence and its record's place, with
    /// the place the capture before the one that first saw it gave (<see cref="Entry.Previous"/>), into
    /// <paramref name="into"/> (grown when there are more producers than it holds) and returns how many.
    /// </summary>
    public int Capture(ref Entry[] into)
    {
        lock (_addLock)
        {
            if (into.Length < _producers.Count)
            {
                into = new Entry[Math.Max(_producers.Count, into.Length * 2)];
            }

            var n = 0;
            foreach (var (id, p) in _producers)
            {
                // A transient topic keeps no record to check the entry against after a restart: its window is in memory only.
                if (p.Newest(out var topic, out var offset) && topic.Persistent)
                {
                    // The place the capture just before gave it stays beside the new one until the next change: every
                    // record the producer wrote after that capture lies within the rescan of a journal that holds that
                    // record but lacks the new one's (ProducerCheckpoint.Load). None when that capture gave it none.
                    var place = new Place(p.Highest, topic, offset);
                    if (p.Captured != place)
                    {
                        p.Previous = p.Captured;
                    }

                    p.Captured = place;
                    into[n++] = new Entry(id, p.Highest, topic, offset, p.LastWrite, p.Previous);
                }
                else
                {
                    p.Captured = default; // no entry: the next one's previous place would not be the capture just before
                }
            }

            return n;
        }
    }

    /// <summary>
    /// Recovery, after the rescan: a checkpoint says <paramref name="producerId"/> stored <paramref name="highest"/> at
    /// (<paramref name="topic"/>, <paramref name="offset"/>), verified against the journal. Every sequence up to it that
    /// the rescan did not find may be stored beyond it: a retry of one is refused (too old), never written again.
    /// </summary>
    /// <remarks>
    /// The entry's place is taken as the producer's latest capture and <paramref name="previous"/> as the one before it,
    /// so the open's own write of <c>producers.state</c> keeps that previous place (or, when the rescan found newer
    /// records, makes the entry's place the previous one), as the captures of the broker that wrote the file would have.
    /// </remarks>
    public void Vouch(ulong producerId, ulong highest, TopicState topic, long offset, long timestamp, ulong epoch, Place previous = default)
    {
        if (!_producers.TryGetValue(producerId, out var p))
        {
            p = new Producer(producerId) { WindowEpoch = epoch };
            p.Vouch(highest, topic, offset, window);
            Add(p);
        }
        else if (InEpoch(p, epoch))
        {
            p.Vouch(highest, topic, offset, window);
        }
        else
        {
            return;
        }

        p.Wrote(timestamp);
        lock (_addLock)
        {
            p.Captured = new Place(highest, topic, offset);
            p.Previous = previous;
        }
    }

    /// <summary>
    /// Journaler (or the restart rescan): <paramref name="producerId"/> stored <paramref name="sequence"/> at
    /// <paramref name="offset"/> with <paramref name="epoch"/>, written at <paramref name="timestamp"/> (Unix ms).
    /// </summary>
    public void Record(ulong producerId, ulong sequence, TopicState topic, long offset, long timestamp, ulong epoch = 0)
    {
        if (_producers.TryGetValue(producerId, out var p))
        {
            if (InEpoch(p, epoch))
            {
                p.Record(sequence, topic, offset, window);
                p.Wrote(timestamp);
            }

            return;
        }

        // Recorded before it is added: NextSequence must never see a new producer at highest 0.
        p = new Producer(producerId) { WindowEpoch = epoch };
        p.Record(sequence, topic, offset, window);
        p.Wrote(timestamp);
        Add(p);
    }

    /// <summary>
    /// Whether a record of <paramref name="epoch"/> belongs to <paramref name="p"/>'s window: 0 (no epoch) and its own
    /// do; a newer one starts a new window (a new instance's sequences are its own); an older one (read by the restart
    /// rescan, which goes topic by topic) does not.
    /// </summary>
    private bool InEpoch(Producer p, ulong epoch)
    {
        if (epoch == 0 || epoch == p.WindowEpoch)
        {
            return true;
        }

        if (epoch < p.WindowEpoch)
        {
            return false;
        }

        lock (_addLock)
        {
            p.Restart(epoch); // under the lock: NextSequence never sees the empty window
        }

        return true;
    }

    private void Add(Producer p)
    {
        if (_allCount == _all.Length)
        {
            Array.Resize(ref _all, _all.Length * 2);
        }

        p.Slot = _allCount;
        _all[_allCount++] = p;
        lock (_addLock)
        {
            if (_fences.Remove(p.Id, out var fence))
            {
                p.Fence = fence.Epoch;
                p.Used = fence.Seen;
            }

            _producers[p.Id] = p;
        }
    }

    /// <summary>
    /// The sweep forgets <paramref name="p"/>'s window; its newest epoch stays, as a fence, for the epoch retention after
    /// its last use (<see cref="KeepFenceLocked"/>): a replaced instance that comes back after the expiry is still refused.
    /// </summary>
    private void Forget(Producer p, long now)
    {
        lock (_addLock)
        {
            _producers.Remove(p.Id);
            var epoch = Math.Max(p.Fence, p.WindowEpoch);
            if (epoch != 0)
            {
                KeepFenceLocked(p.Id, epoch, Math.Max(p.LastWrite, p.Used), now);
            }
        }

        var last = _all[--_allCount];
        _all[p.Slot] = last;
        last.Slot = p.Slot;
        _all[_allCount] = null!;
    }
}
