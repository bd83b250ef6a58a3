using System.Runtime.CompilerServices;
using FastBroker.Journal.Internal;

namespace FastBroker.Journal;

/// <summary>The single-writer append path.</summary>
public sealed unsafe partial class JournalLog
{
    // Writer-thread state: never touched by other threads (they see the published words only).
    private readonly long _maxUndurableBytes;
    private Segment? _active;
    private byte* _writeBase;
    private int _writePos;
    private int _writeLimit; // the active segment's allocated end, cached (EnsureRoom refreshes it)
    private const int WriterAllocationAhead = 4 << 20; // when the writer allocates itself (pre-faulting off or behind)
    private int _writeCount;
    private int _nextIndexPos;
    private long _nextOffset;
    private long _lastTimestamp;
    private long _segmentNewest; // the newest timestamp of the active segment's records: what its index entries carry
    private long _appendedBytes;
    private long _epoch;
    private CoarseClock _clock;

    // Shared positions.
    private long _appendedOffset;
    private long _durableOffset;
    private long _durableBytes;

    /// <summary>
    /// Epoch stamped into segments created from now on (the replication term; writer thread).
    /// </summary>
    public long Epoch
    {
        get => _epoch;
        set => _epoch = value;
    }

    /// <summary>Bytes a record takes in a segment (header and padding included): what a batch reserves.</summary>
    public static int StoredSize(int keyLength, int headersLength, int payloadLength) =>
        RecordLayout.Align(RecordLayout.HeaderSize + keyLength + headersLength + payloadLength);

    /// <summary>The largest <see cref="StoredSize"/> a record may have: a segment minus its header.</summary>
    public int MaxStoredRecordSize => _options.SegmentSize - SegmentHeader.Size;

    /// <summary>Appends a payload-only record stamped with the current time. Writer thread only.</summary>
    /// <returns>False for back-pressure (too many bytes not yet durable; wait for <see cref="DurableOffset"/> to move).</returns>
    /// <exception cref="JournalFullException">A new segment was needed and the disk is full; nothing was written.</exception>
    /// <exception cref="JournalException">The journal is faulted after a failed flush (<see cref="JournalErrorCode.Faulted"/>);
    /// or (<see cref="JournalErrorCode.IoError"/>) a new segment was needed and cannot be created now, its cause inside
    /// (out of descriptors, or on one of the last ones the process keeps in reserve: EMFILE); nothing was written, the
    /// journal is as it was, and the next append tries again.</exception>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public bool TryAppend(ReadOnlySpan<byte> payload, out long offset) =>
        TryAppend(default, default, payload, RecordFlags.None, _clock.NowUnixMs(), out offset);

    /// <summary>Appends a record with key, header block and flags, stamped with the current time. Writer thread only.</summary>
    /// <inheritdoc cref="TryAppend(ReadOnlySpan{byte}, out long)"/>
    public bool TryAppend(ReadOnlySpan<byte> key, ReadOnlySpan<byte> headers, ReadOnlySpan<byte> payload, RecordFlags flags, out long offset) =>
        TryAppend(key, headers, payload, flags, _clock.NowUnixMs(), out offset);

    /// <summary>
    /// Appends a record with an explicit Unix-millisecond timestamp (raised to the newest timestamp in the journal if
    /// earlier, so an appended record is never stamped earlier than one before it). Writer thread only.
    /// </summary>
    /// <inheritdoc cref="TryAppend(ReadOnlySpan{byte}, out long)"/>
    public bool TryAppend(ReadOnlySpan<byte> key, ReadOnlySpan<byte> headers, ReadOnlySpan<byte> payload, RecordFlags flags, long timestampUnixMs, out long offset)
    {
        var length = (long)RecordLayout.HeaderSize + key.Length + headers.Length + payload.Length;
        var stored = (length + 7) & ~7L;
        if (_writePos + stored > _writeLimit || key.Length > ushort.MaxValue || _appendedBytes - Volatile.Read(ref _durableBytes) > _maxUndurableBytes)
        {
            return TryAppendSlow(key, headers, payload, flags, timestampUnixMs, out offset);
        }

        offset = _nextOffset;
        WriteRecord((int)stored, (int)length, key, headers, payload, flags, timestampUnixMs);
        PublishAppends();
        return true;
    }

    /// <summary>
    /// Reserves <paramref name="maxBytes"/> (a sum of <see cref="StoredSize"/>) in the current segment, rolling to
    /// a new one if they do not fit: the one segment bounds check of the whole batch. The batch's records are
    /// published together by <see cref="JournalBatch.Complete"/>. Writer thread only.
    /// </summary>
    /// <returns>False for back-pressure.</returns>
    /// <exception cref="JournalFullException">A new segment was needed and the disk is full.</exception>
    /// <exception cref="JournalException">A new segment was needed and cannot be created now (the cause inside); nothing was reserved.</exception>
    public bool TryBeginBatch(int maxBytes, out JournalBatch batch)
    {
        batch = default;
        ThrowIfUnusable();
        if (maxBytes <= 0 || maxBytes > MaxStoredRecordSize)
        {
            throw new ArgumentOutOfRangeException(nameof(maxBytes), maxBytes, $"A batch reserves 1..{MaxStoredRecordSize} bytes (one segment).");
        }

        if (_appendedBytes - Volatile.Read(ref _durableBytes) > _maxUndurableBytes)
        {
            RequestFlush();
            return false;
        }

        if (_active is null || _writePos + (long)maxBytes > _writeLimit)
        {
            EnsureRoom(maxBytes);
        }

        batch = new JournalBatch(this, _writePos + maxBytes, _nextOffset, _clock.NowUnixMs());
        return true;
    }

    /// <summary>Batch append: checked only against the reservation (a register compare), published later.</summary>
    internal long AppendReserved(ReadOnlySpan<byte> key, ReadOnlySpan<byte> headers, ReadOnlySpan<byte> payload, RecordFlags flags, long timestamp, int reservationEnd)
    {
        var length = (long)RecordLayout.HeaderSize + key.Length + headers.Length + payload.Length;
        var stored = (length + 7) & ~7L;
        if (_writePos + stored > reservationEnd || key.Length > ushort.MaxValue)
        {
            ThrowHelper.ThrowReservationExceeded(stored, reservationEnd - _writePos);
        }

        var offset = _nextOffset;
        WriteRecord((int)stored, (int)length, key, headers, payload, flags, timestamp);
        return offset;
    }

    /// <summary>
    /// Ends the writer's batch: under <see cref="DurabilityPolicy.None"/> everything appended becomes durable
    /// (page cache) and visible now; under <see cref="DurabilityPolicy.GroupCommit"/> the flusher is woken to sync
    /// it; under <see cref="DurabilityPolicy.Interval"/> the next tick covers it. Writer thread only; cheap
    /// (an interlocked exchange when the flusher is busy).
    /// </summary>
    public void Commit()
    {
        if (_policy == DurabilityPolicy.None)
        {
            CommitNone();
        }
        else if (_policy == DurabilityPolicy.GroupCommit)
        {
            RequestFlush();
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private void WriteRecord(int stored, int length, ReadOnlySpan<byte> key, ReadOnlySpan<byte> headers, ReadOnlySpan<byte> payload, RecordFlags flags, long timestamp)
    {
        if (timestamp < _lastTimestamp)
        {
            timestamp = _lastTimestamp;
        }

        var position = _writePos;
        var p = _writeBase + position;
        *(ulong*)(p + stored - 8) = 0; // padding: the page may hold bytes of a record dropped by recovery
        *(uint*)p = (uint)length;
        *(long*)(p + RecordLayout.OffsetOffset) = _nextOffset;
        *(long*)(p + RecordLayout.TimestampOffset) = timestamp;
        *(ushort*)(p + RecordLayout.FlagsOffset) = (ushort)flags;
        *(ushort*)(p + RecordLayout.KeyLengthOffset) = (ushort)key.Length;
        *(uint*)(p + RecordLayout.HeadersLengthOffset) = (uint)headers.Length;
        var body = p + RecordLayout.HeaderSize;
        if (!key.IsEmpty)
        {
            key.CopyTo(new Span<byte>(body, key.Length));
            body += key.Length;
        }

        if (!headers.IsEmpty)
        {
            headers.CopyTo(new Span<byte>(body, headers.Length));
            body += headers.Length;
        }

        payload.CopyTo(new Span<byte>(body, payload.Length));
        *(uint*)(p + RecordLayout.CrcOffset) = RecordLayout.ComputeCrc(new ReadOnlySpan<byte>(p, length), length);

        if (position >= _nextIndexPos)
        {
            _active!.Index.Add(_writeCount, position, timestamp); // at least every timestamp before it: the newest
            _nextIndexPos = position + _options.IndexIntervalBytes;
        }

        _writePos = position + stored;
        _writeCount++;
        _nextOffset++;
        _lastTimestamp = timestamp;
        _segmentNewest = timestamp;
        _appendedBytes += stored;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal void PublishAppends()
    {
        _active!.Publish(Segment.Pack(_writeCount, _writePos), _lastTimestamp);
        Volatile.Write(ref _appendedOffset, _nextOffset);
        WakePrefaulterIfDue();
    }

    [MethodImpl(MethodImplOptions.NoInlining)]
    private bool TryAppendSlow(ReadOnlySpan<byte> key, ReadOnlySpan<byte> headers, ReadOnlySpan<byte> payload, RecordFlags flags, long timestamp, out long offset)
    {
        offset = -1;
        ThrowIfUnusable();
        var length = (long)RecordLayout.HeaderSize + key.Length + headers.Length + payload.Length;
        var stored = (length + 7) & ~7L;
        if (key.Length > ushort.MaxValue)
        {
            throw new JournalException(JournalErrorCode.RecordTooLarge, $"A key is at most 65535 bytes (got {key.Length}).");
        }

        if (stored > MaxStoredRecordSize)
        {
            throw new JournalException(JournalErrorCode.RecordTooLarge, $"Record of {stored} bytes does not fit in a {_options.SegmentSize}-byte segment (max {MaxStoredRecordSize}).");
        }

        if (_appendedBytes - Volatile.Read(ref _durableBytes) > _maxUndurableBytes)
        {
            RequestFlush();
            return false;
        }

        if (_active is null || _writePos + stored > _writeLimit)
        {
            EnsureRoom(stored);
        }

        offset = _nextOffset;
        WriteRecord((int)stored, (int)length, key, headers, payload, flags, timestamp);
        PublishAppends();
        return true;
    }

    /// <summary>
    /// Room for <paramref name="needed"/> bytes at the write position: the next segment if they do not fit in this
    /// one, else disk blocks up to there (the pre-fault thread usually allocated them already).
    /// </summary>
    /// <exception cref="JournalFullException">The disk is full; nothing was written.</exception>
    private void EnsureRoom(long needed)
    {
        if (_active is null || _writePos + needed > _active.Size)
        {
            Roll();
        }

        var active = _active!;
        var end = _writePos + needed;
        if (end > active.AllocatedTo)
        {
            try
            {
                // A segment past its first MiB is not quiet: all its blocks at once (see AllocateAhead).
                active.AllocateTo(end > FullAllocationAfter ? active.Size : (int)Math.Min(active.Size, end + WriterAllocationAhead));
            }
            catch (JournalFullException)
            {
                active.AllocateTo((int)end); // a nearly full disk: just up to this record's folio, or refuse it
            }
        }

        _writeLimit = active.AllocatedTo;
        Interlocked.MemoryBarrier(); // the store above before the read below (see Fault)
        if (_fault is not null)
        {
            _writeLimit = 0; // the flusher faulted meanwhile: the next append takes the slow path too
        }
    }

    /// <summary>
    /// Creates the next segment, then closes the current one: a creation that fails (a full disk, out of descriptors,
    /// a descriptor in the process's reserve) throws before anything changed, so the append is refused whole and the
    /// current segment stays the active one. An empty active segment too small for the record (the journal reopened
    /// with a larger segment size) is replaced by one of the same base offset, so of the same file name: the new one
    /// is made under a temporary name and renamed over it, so that too fails before anything changed. So is an empty
    /// sealed segment the open found last (no segment active then): its file name is the next segment's. That rename
    /// is made durable as every new segment's name is: the segment needs a directory sync, which the flusher does before
    /// it syncs (and counts durable) any record of it or seals it (SyncDirectoryIfNew); a power loss before then can
    /// only bring back the empty segment, the journal as it was before the roll (docs/journal-format.md).
    /// </summary>
    private void Roll()
    {
        var old = _active;
        var segments = _segments;
        var replaced = old is not null ? (_writeCount == 0 ? old : null)
            : segments.Length > 0 && segments[^1].BaseOffset == _nextOffset ? segments[^1] : null;
        var path = Path.Combine(_directory, Segment.FileNameFor(_nextOffset));
        var header = new SegmentHeader(_epoch, _nextOffset, _options.SegmentSize, NowUnixMs());
        var segment = TakeSpare();
        if (segment is not null && segment.Size == _options.SegmentSize)
        {
            try
            {
                segment.Adopt(path, header, replace: replaced is not null);
            }
            catch (IOException)
            {
                DiscardSpare(ref segment);
            }
        }
        else if (segment is not null)
        {
            DiscardSpare(ref segment);
        }

        // Throws JournalFullException or JournalException; nothing changed yet.
        segment ??= replaced is null ? Segment.Create(path, header, _indexCapacity) : CreateReplacement(path, header);
        if (replaced is not null)
        {
            // Its file is the new segment's now (the rename unlinked the old one, still mapped while referenced).
            lock (_segmentsLock)
            {
                Segment[] kept = [.. _segments.Where(s => s != replaced)];
                segment.NewestBefore = kept.Length > 0 ? kept[^1].NewestUpToEnd : 0;
                Volatile.Write(ref _segments, [.. kept, segment]); // NewestBefore before the list: a time search reads it
            }

            // Retired before it is closed: the flusher seals only closed segments it can acquire, so it never seals this
            // one (its seal would say no record, in a file a power loss could put back under the name if the rename was
            // lost), and a reader positioned in it moves to its replacement.
            replaced.Retire();
            replaced.Close();
            Segment.TryDelete(IndexFile.PathFor(path)); // a sealed one's, which names no record of the new one
        }
        else
        {
            if (old is not null)
            {
                if (_policy == DurabilityPolicy.None)
                {
                    CommitNone();
                }

                old.Close();
            }

            lock (_segmentsLock)
            {
                // The previous segment is closed: its last timestamp is final, so the running newest never falls.
                segment.NewestBefore = _segments.Length > 0 ? _segments[^1].NewestUpToEnd : 0;
                Volatile.Write(ref _segments, [.. _segments, segment]); // NewestBefore before the list: a time search reads it
            }
        }

        Activate(segment);
        WakePrefaulterAfterRoll(); // pre-fault the new segment's window; the spare is gone
        RequestFlush(); // directory sync, seal the old segment
    }

    /// <summary>
    /// The replacement of an empty segment at <paramref name="path"/>: created under a spare's temporary name (removed at
    /// the next open if the process dies first), then renamed over the empty segment's file.
    /// </summary>
    /// <exception cref="JournalFullException">The disk is full; the empty segment is untouched.</exception>
    /// <exception cref="JournalException">The replacement cannot be created or renamed (the cause inside); the empty segment is untouched.</exception>
    private Segment CreateReplacement(string path, in SegmentHeader header)
    {
        Segment? segment = Segment.CreateBlank(Path.Combine(_directory, $"spare-{Guid.NewGuid():N}.prep"), _options.SegmentSize, _indexCapacity);
        try
        {
            segment.Adopt(path, header, replace: true);
            return segment;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            DiscardSpare(ref segment);
            throw new JournalException(JournalErrorCode.IoError, $"segment '{path}' cannot be replaced: {e.Message}", e);
        }
    }

    private void Activate(Segment segment)
    {
        _active = segment;
        _writeBase = segment.Pointer;
        var published = segment.Published;
        _writePos = Segment.PositionOf(published);
        segment.AdviseAppendOnly(_writePos); // a reopened one: its unwritten rest (a blank one was advised at creation)
        _writeCount = Segment.CountOf(published);
        _writeLimit = segment.AllocatedTo;
        _lastTimestamp = Math.Max(_lastTimestamp, segment.LastTimestamp);
        _segmentNewest = _writeCount == 0 ? 0 : segment.LastTimestamp; // a reopened segment's: the newest of its records
        var index = segment.Index;
        _nextIndexPos = index.Count > 0 ? index[index.Count - 1].Position + _options.IndexIntervalBytes : SegmentHeader.Size;
    }

    /// <summary>None policy: the writer itself advances the durable marks (no sync), then wakes waiters if any.</summary>
    private void CommitNone()
    {
        var active = _active;
        if (active is null)
        {
            return;
        }

        active.SetDurable(Segment.Pack(_writeCount, _writePos));
        Volatile.Write(ref _durableBytes, _appendedBytes);
        Volatile.Write(ref _durableOffset, _nextOffset);
        if (Volatile.Read(ref _waiterCount) > 0)
        {
            RequestFlush();
        }
    }
}
