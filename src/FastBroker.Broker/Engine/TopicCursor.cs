using System.Buffers;
using FastBroker.Journal;

namespace FastBroker.Engine;

/// <summary>
/// One subscription's position in one topic: a journal reader (zero-copy over the mapping) for persistent topics,
/// an offset plus a private copy buffer for transient ones.
/// </summary>
/// <remarks>
/// A transient cursor's own copy buffer is as long as a slot's own buffer (<see cref="TransientLog.OwnEntryBytes"/>),
/// allocated with the cursor, so ordinary messages are copied without allocating. A longer message is copied into an
/// array rented from <see cref="ArrayPool{T}.Shared"/> and given back as soon as its delivery is done (the sink is
/// offered a scoped view it cannot keep): a cursor never keeps a buffer the size of the largest message it read
/// (10,000 subscriptions × one 16 MiB message would be 160 GiB held for good).
/// </remarks>
internal sealed class TopicCursor : IDisposable
{
    private readonly byte[] _scratch; // transient: the own copy buffer; [] for a persistent topic
    private int _lentBytes; // a pooled array's length while a longer message is copied and delivered from it
    private long _next;
    private long _skippedReported;
    private long _pendingMissed; // transient: overwritten before the start it asked for, reported with the first read
    private readonly bool _pinsRetention;

    /// <param name="topic">The topic read.</param>
    /// <param name="start">Where to start.</param>
    /// <param name="committed">A durable subscription's committed position in the topic, if any.</param>
    /// <param name="topicIsNew">The topic was created after the subscription: read from its beginning.</param>
    /// <param name="pinRetention">A persistent topic's reader is a retention floor at its position (a work-queue group's
    /// feed, whose offsets must stay dense): registered before it looks for its start, so a retention pass that asked
    /// the broker's floors before the group existed still sees it, or has already dropped the segments it deletes and
    /// the reader starts after them. Its position is never below the group's ack floor, which holds retention anyway.</param>
    public TopicCursor(TopicState topic, StartPosition start, long? committed, bool topicIsNew, bool pinRetention = false)
    {
        Topic = topic;
        _pinsRetention = pinRetention;
        _scratch = topic.Transient is { } ring ? new byte[ring.OwnEntryBytes] : [];
        if (topic.Journal is { } journal)
        {
            Reader = journal.OpenReader(ToReadStart(start, committed, topicIsNew), pinRetention: pinRetention);

            // A durable subscription resumes where it committed, and a start at an offset (a client resuming after a
            // reconnect) where it asks; retention may have deleted from there on (a closed subscription holds nothing
            // back). The reader starts at the first retained record; the gap is reported with the first read, as a
            // skip while reading is, for both alike.
            if (!topicIsNew && RequestedOffset(start, committed) is { } from && Reader.NextOffset > from)
            {
                _skippedReported = Reader.Skipped - (Reader.NextOffset - from);
            }

            return;
        }

        // A start at a time resolves to one offset here, as a journal's time index resolves it (Kafka's offsetsForTimes
        // too): the first message stamped at or after it among those held now, else the head. From there everything is
        // delivered, also a message a wall clock that stepped back stamped earlier, and Positions (the server's OK)
        // names the offset delivery starts at. A topic created after the subscription is read from its beginning.
        var log = topic.Transient!;
        _next = start.Kind switch
        {
            _ when topicIsNew => 0,
            StartKind.Latest => log.Head,
            StartKind.Timestamp => log.FirstAtOrAfter(start.Value),
            StartKind.Offset => Math.Clamp(start.Value, log.Tail, log.Head),
            StartKind.Committed when committed is { } c => Math.Clamp(c, log.Tail, log.Head),
            _ => log.Tail,
        };

        // Below the tail: the ring overwrote from there on. The cursor starts at the oldest kept (what the server's OK
        // names) and the first read reports the gap, as a journal cursor does for a start retention deleted.
        if (!topicIsNew && RequestedOffset(start, committed) is { } requested && requested < _next)
        {
            _pendingMissed = _next - requested;
        }
    }

    public TopicState Topic { get; }

    public JournalReader? Reader { get; private set; }

    /// <summary>The next offset this cursor will read.</summary>
    public long NextOffset => Reader?.NextOffset ?? _next;

    /// <summary>
    /// Messages this cursor lost: a transient one by falling more than a ring behind, a persistent one because
    /// retention deleted them before it read them (its reader does not hold retention back).
    /// </summary>
    public long Missed { get; private set; }

    /// <summary>
    /// Bytes this cursor holds to copy transient messages into: its own buffer, plus a pooled array's while a longer
    /// message is being delivered (0 for a persistent topic). Any thread may read it.
    /// </summary>
    public long CopyBytes => _scratch.Length + Volatile.Read(ref _lentBytes);

    /// <summary>Reads up to <paramref name="max"/> messages into <paramref name="sink"/>; returns how many were read (delivered or skipped).</summary>
    public int Read<TSink>(int max, ref TSink sink)
        where TSink : struct, ICursorSink, allows ref struct
    {
        return Reader is { } reader ? ReadJournal(reader, max, ref sink) : ReadTransient(max, ref sink);
    }

    public void Dispose() => Reader?.Dispose();

    /// <summary>
    /// Moves back to <paramref name="offset"/> (below <see cref="NextOffset"/>): messages read but never handed to the
    /// consumer are read again (<c>ReadAllAsync</c> left before it gave out its whole batch). What retention deleted or
    /// the ring overwrote meanwhile is reported as missed by the next read. The cursor's consumer only.
    /// </summary>
    /// <exception cref="ObjectDisposedException">The topic's journal is closed (the broker is closing).</exception>
    public void Rewind(long offset)
    {
        if (offset >= NextOffset)
        {
            return;
        }

        if (Reader is not { } old)
        {
            _next = offset;
            return;
        }

        var reader = Topic.Journal!.OpenReader(ReadStart.FromOffset(offset), pinRetention: _pinsRetention);
        _skippedReported = reader.NextOffset > offset ? reader.Skipped - (reader.NextOffset - offset) : reader.Skipped;
        Reader = reader;
        old.Dispose();
    }

    /// <summary>The offset a start names (a committed position or <see cref="StartPosition.AtOffset"/>), or null.</summary>
    private static long? RequestedOffset(StartPosition start, long? committed) => start.Kind switch
    {
        StartKind.Committed => committed,
        StartKind.Offset => start.Value,
        _ => null,
    };

    private static ReadStart ToReadStart(StartPosition start, long? committed, bool topicIsNew)
    {
        if (topicIsNew)
        {
            return ReadStart.Beginning;
        }

        return start.Kind switch
        {
            StartKind.Earliest => ReadStart.Beginning,
            StartKind.Offset => ReadStart.FromOffset(start.Value),
            StartKind.Timestamp => ReadStart.FromTimestamp(start.Value),
            StartKind.Committed => committed is { } c ? ReadStart.FromOffset(c) : ReadStart.Beginning,
            _ => ReadStart.End,
        };
    }

    private int ReadJournal<TSink>(JournalReader reader, int max, ref TSink sink)
        where TSink : struct, ICursorSink, allows ref struct
    {
        var n = 0;
        var topic = Topic;

        // On the primary of a pair whose consumers see only what the standby holds: up to that bound (read once: a raise
        // after this read wakes the consumer again).
        var visible = topic.VisibleEnd;
        while (n < max && reader.NextOffset < visible && TryReadChecked(reader, out var record))
        {
            if (reader.Skipped != _skippedReported)
            {
                ReportSkipped(reader, ref sink); // before the message: it is the one the subscriber resumes at
            }

            n++;
            sink.Offer(new MessageView(topic, record.Offset, record.Timestamp, record.Key, record.Headers, record.Payload, 0), (ushort)record.Flags);
        }

        if (reader.Skipped != _skippedReported)
        {
            ReportSkipped(reader, ref sink); // skipped to a tail with nothing readable yet
        }

        // The sink is done with every view it was offered: until the next read the subscription holds no span, so a
        // paused one (no credit, never fetching again) does not keep a segment retention deletes mapped, nor its blocks.
        reader.Park();
        return n;
    }

    /// <summary>
    /// <see cref="JournalReader.TryRead"/>, a damaged record turned into the topic's
    /// <see cref="BrokerErrorCode.DamagedRecord"/> error (the reader stays before it: every read meets it again).
    /// </summary>
    private bool TryReadChecked(JournalReader reader, out JournalRecord record)
    {
        try
        {
            return reader.TryRead(out record);
        }
        catch (JournalCorruptionException e)
        {
            reader.Park();
            throw Topic.Damaged(e);
        }
    }

    /// <summary>
    /// Moves this persistent cursor past the damaged run it met, on at <paramref name="resume"/> (the run's
    /// <see cref="JournalCorruptionException.ResumeOffset"/>: the next record that reads, the next segment's first when
    /// nothing after the damage in its segment does, or the head of the last segment), with one seek: the run was
    /// learned in one pass when the reader met it, and is not walked offset by offset. Returns the new
    /// <see cref="NextOffset"/>. The cursor's consumer only (a work-queue group's feed).
    /// </summary>
    /// <exception cref="BrokerException"><see cref="BrokerErrorCode.DamagedRecord"/>: the seek refused the start (it passes
    /// over every kind of damage before its start, a zero length word among the records included, so none is known to
    /// do so; kept so that one would leave the cursor before it rather than skip).</exception>
    public long SkipDamaged(long resume)
    {
        var old = Reader!;
        JournalReader reader;
        try
        {
            reader = Topic.Journal!.OpenReader(ReadStart.FromOffset(resume), pinRetention: _pinsRetention);
        }
        catch (JournalCorruptionException e)
        {
            throw Topic.Damaged(e);
        }

        _skippedReported = reader.Skipped;
        Reader = reader;
        old.Dispose();
        return reader.NextOffset;
    }

    /// <summary>The reader moved past records retention deleted: the subscriber is told how many, as for a transient topic.</summary>
    private void ReportSkipped<TSink>(JournalReader reader, ref TSink sink)
        where TSink : struct, ICursorSink, allows ref struct
    {
        var skipped = reader.Skipped - _skippedReported;
        _skippedReported = reader.Skipped;
        Missed += skipped;
        sink.Missed(skipped);
    }

    private int ReadTransient<TSink>(int max, ref TSink sink)
        where TSink : struct, ICursorSink, allows ref struct
    {
        var log = Topic.Transient!;
        var n = 0;
        if (_pendingMissed != 0)
        {
            Missed += _pendingMissed;
            sink.Missed(_pendingMissed);
            _pendingMissed = 0;
        }

        while (n < max)
        {
            var tail = log.Tail;
            if (_next < tail)
            {
                Missed += tail - _next;
                sink.Missed(tail - _next);
                _next = tail;
            }

            var status = log.TryRead(_next, _scratch, out var e);
            if (status == TransientReadStatus.TooSmall)
            {
                status = ReadLonger(log, e.Length, ref sink);
                if (status == TransientReadStatus.Ok)
                {
                    n++; // offered (and _next moved past it) by ReadLonger
                    continue;
                }
            }

            if (status == TransientReadStatus.NotYet)
            {
                break;
            }

            if (status == TransientReadStatus.Overwritten)
            {
                Missed++;
                sink.Missed(1);
                _next++;
                continue;
            }

            _next++;
            n++;
            sink.Offer(ViewOf(e, _scratch), e.Flags);
        }

        return n;
    }

    /// <summary>The message <paramref name="e"/> as read into <paramref name="buffer"/> (key, headers, payload in turn).</summary>
    private MessageView ViewOf(TransientEntry e, byte[] buffer)
    {
        var bytes = buffer.AsSpan();
        return new MessageView(Topic, e.Offset, e.Timestamp, bytes[..e.KeyLength], bytes.Slice(e.KeyLength, e.HeadersLength), bytes.Slice(e.KeyLength + e.HeadersLength, e.PayloadLength), 0);
    }

    /// <summary>
    /// The slow path: the message at <see cref="_next"/> is longer than the own buffer. It is copied into a pooled
    /// array, offered, and the array goes back to the pool when the sink is done with it (also when a handler throws).
    /// </summary>
    private TransientReadStatus ReadLonger<TSink>(TransientLog log, int length, ref TSink sink)
        where TSink : struct, ICursorSink, allows ref struct
    {
        var rented = ArrayPool<byte>.Shared.Rent(length);
        Volatile.Write(ref _lentBytes, rented.Length);
        try
        {
            var status = log.TryRead(_next, rented, out var e);
            if (status == TransientReadStatus.TooSmall)
            {
                return TransientReadStatus.Overwritten; // another message in the slot since its length was read
            }

            if (status == TransientReadStatus.Ok)
            {
                _next++;
                sink.Offer(ViewOf(e, rented), e.Flags);
            }

            return status;
        }
        finally
        {
            Volatile.Write(ref _lentBytes, 0);
            ArrayPool<byte>.Shared.Return(rented);
        }
    }
}

/// <summary>Where a cursor puts what it reads (the subscription's filter and the user's handler).</summary>
internal interface ICursorSink
{
    void Offer(scoped in MessageView message, ushort flags);

    /// <summary><paramref name="count"/> messages were lost (overwritten in a transient ring, or deleted by retention) before the next one offered.</summary>
    void Missed(long count);
}
