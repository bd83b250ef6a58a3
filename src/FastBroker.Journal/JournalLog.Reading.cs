using System.Buffers.Binary;
using System.Runtime.CompilerServices;
using FastBroker.Journal.Internal;

namespace FastBroker.Journal;

/// <summary>Opening readers: seeks by offset (sparse index) and by time (segment, then index binary search).</summary>
public sealed partial class JournalLog
{
    private const string ReadersDirectoryName = "readers";

    private long _crcChecks;

    /// <summary>
    /// Opens a reader at <paramref name="start"/>. Readers see durable records only and may be used from any one
    /// thread each. <paramref name="verifyChecksums"/> (the default) checks each record not yet known good in this
    /// process as it is read: its length, its offset and its CRC32C (no allocation; the CRC32C instruction over the
    /// record's bytes). Known good, and read by its length word alone, is a record below its segment's <i>verified
    /// watermark</i>: every record of a segment this process created (its writer computed the CRC32C from memory, a
    /// standby's copy checked each record received) or whose records the open checked (the tail always, sealed segments
    /// with <see cref="JournalOptions.VerifySealedSegmentsOnOpen"/>), and in a sealed segment the open trusted, the
    /// records from its start that a checking reader or seek has already checked (a seek to a start in its middle first
    /// checks the records from the watermark up to the start). So such a segment is checked once per process, by its
    /// first reader, and steady-state reads of fresh records compute no CRC32C at all. A record that
    /// fails is never returned: the read throws <see cref="JournalCorruptionException"/> naming the segment file, the
    /// byte position and the offset, and keeps throwing there (a run returns the records before it first). Bytes that
    /// change on disk after this process wrote or checked them are not checked again on read: <c>fastbroker journal
    /// verify</c> and the next open that verifies find them. Only a caller that checks the records itself should pass
    /// false: a damaged record of a trusted segment is then returned as it is (a damaged length word may end the read
    /// with an <see cref="ArgumentOutOfRangeException"/>).
    /// A reader does not hold retention back: if retention deletes records it has not read, it moves on to the first
    /// retained one and counts them in <see cref="JournalReader.Skipped"/>. With <paramref name="pinRetention"/> it is
    /// a retention floor instead, like <see cref="MinRetainedOffset"/> at its <see cref="JournalReader.NextOffset"/>,
    /// until disposed: for a copy that must never have a gap (the replication stream). A pinned reader that stops
    /// reading stops retention, and the disk fills, unless its <see cref="JournalReader.MaxRetentionHoldBytes"/> bounds
    /// what it may hold back (past that, retention passes it like any reader). The journal holds its readers weakly: one
    /// dropped undisposed lets go of its segment and its floor once it is garbage collected (see
    /// <see cref="JournalReader"/>'s remarks), not before.
    /// </summary>
    public JournalReader OpenReader(ReadStart start, bool verifyChecksums = true, bool pinRetention = false) =>
        OpenReaderCore(start, null, verifyChecksums, pinRetention);

    /// <summary>
    /// Opens a named reader: from its saved position (<see cref="JournalReader.SavePosition"/>) if it has one,
    /// else from <paramref name="startIfNew"/>.
    /// </summary>
    public JournalReader OpenReader(string name, ReadStart startIfNew, bool verifyChecksums = true)
    {
        ValidateReaderName(name);
        var start = TryGetSavedPosition(name, out var saved) ? ReadStart.FromOffset(saved) : startIfNew;
        return OpenReaderCore(start, name, verifyChecksums, pin: false);
    }

    /// <summary>The position a named reader last saved.</summary>
    public bool TryGetSavedPosition(string name, out long offset)
    {
        ValidateReaderName(name);
        return TryReadPositionFile(ReaderPositionPath(name), out offset);
    }

    internal void SaveReaderPosition(string name, long offset) => WritePositionFile(ReaderPositionPath(name), offset);

    /// <summary>Reads a saved reader position (8-byte offset, CRC32C of it); false when missing or damaged.</summary>
    internal static bool TryReadPositionFile(string path, out long offset)
    {
        offset = -1;
        if (!File.Exists(path))
        {
            return false;
        }

        var bytes = File.ReadAllBytes(path);
        if (bytes.Length != 12 || BinaryPrimitives.ReadUInt32LittleEndian(bytes.AsSpan(8)) != Crc32C.Compute(bytes.AsSpan(0, 8)))
        {
            return false;
        }

        offset = BinaryPrimitives.ReadInt64LittleEndian(bytes);
        return true;
    }

    /// <summary>Writes a reader position: fsync'd temporary file, an atomic rename over the old one, the directory fsync'd.</summary>
    internal static void WritePositionFile(string path, long offset)
    {
        System.IO.Directory.CreateDirectory(Path.GetDirectoryName(path)!);
        Span<byte> bytes = stackalloc byte[12];
        BinaryPrimitives.WriteInt64LittleEndian(bytes, offset);
        BinaryPrimitives.WriteUInt32LittleEndian(bytes[8..], Crc32C.Compute(bytes[..8]));
        DurableFile.WriteAllBytes(path, bytes);
    }

    private string ReaderPositionPath(string name) => Path.Combine(_directory, ReadersDirectoryName, name + ".pos");

    private static void ValidateReaderName(string name)
    {
        if (string.IsNullOrEmpty(name) || name.Length > 200 || !name.All(c => char.IsAsciiLetterOrDigit(c) || c is '-' or '_' or '.') || name[0] == '.')
        {
            throw new ArgumentException("Reader names are 1-200 characters of [A-Za-z0-9._-], not starting with '.'.", nameof(name));
        }
    }

    private JournalReader OpenReaderCore(ReadStart start, string? name, bool verify, bool pin)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        JournalReader? pinned = null;
        if (pin)
        {
            // Registered before it looks for its segment, with a floor under everything: a retention pass either sees
            // it (and deletes nothing) or has finished, and then the search below sees what that pass left.
            pinned = new JournalReader(this, name, null, 0, long.MinValue, verify, pinsRetention: true);
            lock (_segmentsLock)
            {
                _pinningReaders.Add(pinned.Registration);
            }
        }

        Segment? segment;
        int position;
        long offset;
        try
        {
            Locate(start, out segment, out position, out offset);
        }
        catch when (pinned is not null)
        {
            Unpin(pinned);
            GC.SuppressFinalize(pinned);
            throw;
        }

        JournalReader reader;
        if (pinned is not null)
        {
            pinned.Place(segment, position, offset);
            reader = pinned;
        }
        else
        {
            reader = new JournalReader(this, name, segment, position, offset, verify);
        }

        // Registered after it holds its segment: a pass that retired that segment before (TryAcquire refused it) is
        // no concern, and any later pass finds the reader here.
        lock (_readersLock)
        {
            _readers.Add(reader.Registration);
        }

        return reader;
    }

    /// <summary>Readers registered with the journal (opened, not yet disposed or collected). Tests, diagnostics.</summary>
    internal int OpenReaderCount
    {
        get
        {
            lock (_readersLock)
            {
                return _readers.Count;
            }
        }
    }

    /// <summary>Readers registered as retention floors (opened with <c>pinRetention</c>, not yet disposed or collected).</summary>
    internal int PinningReaderCount
    {
        get
        {
            lock (_segmentsLock)
            {
                return _pinningReaders.Count;
            }
        }
    }

    /// <summary>A reader was disposed or finalized: retention no longer looks at it.</summary>
    internal void Unregister(JournalReader reader)
    {
        lock (_readersLock)
        {
            _readers.Remove(reader.Registration);
        }
    }

    /// <summary>
    /// After a pass retired segments: every parked reader in one of them lets go of it, so its mapping goes and the
    /// unlinked file's blocks are freed (<see cref="JournalReader.Park"/>). A reader that is reading keeps its segment
    /// until it parks. One array per pass that deleted something; nothing per record.
    /// </summary>
    private void ReleaseRetiredSegmentsOfParkedReaders()
    {
        WeakReference<JournalReader>[] readers;
        lock (_readersLock)
        {
            if (_readers.Count == 0)
            {
                return;
            }

            readers = [.. _readers];
        }

        foreach (var registration in readers)
        {
            // A cleared one is a reader collected undisposed: its finalizer releases its segment.
            if (registration.TryGetTarget(out var reader))
            {
                reader.ReleaseRetiredSegment();
            }
        }
    }

    private void Locate(ReadStart start, out Segment? segment, out int position, out long offset)
    {
        switch (start.Kind)
        {
            case ReadStartKind.Timestamp:
                LocateTimestamp(start.Value, out segment, out position, out offset);
                break;
            case ReadStartKind.End:
                LocateOffset(DurableOffset, out segment, out position, out offset);
                break;
            default:
                LocateOffset(start.Value, out segment, out position, out offset);
                break;
        }
    }

    /// <summary>A pinning reader was disposed or finalized: its floor goes.</summary>
    internal void Unpin(JournalReader reader)
    {
        lock (_segmentsLock)
        {
            _pinningReaders.Remove(reader.Registration);
        }
    }

    /// <summary>
    /// Finds the durable record at <paramref name="target"/> (clamped to [first, durable]) and acquires its
    /// segment: binary search over segments, binary search in the sparse index, then a scan of at most one
    /// index interval.
    /// </summary>
    internal void LocateOffset(long target, out Segment? segment, out int position, out long offset)
    {
        while (true)
        {
            var segments = Volatile.Read(ref _segments);
            if (segments.Length == 0)
            {
                // Only while a roll replaces an empty segment: nothing to read yet, stay within the journal's range.
                segment = null;
                position = 0;
                offset = Math.Clamp(target, FirstOffset, Math.Max(FirstOffset, DurableOffset));
                return;
            }

            target = Math.Clamp(target, segments[0].BaseOffset, Math.Max(segments[0].BaseOffset, DurableOffset));
            var s = segments[FindSegmentIndex(segments, target)];
            if (!s.TryAcquire())
            {
                continue; // retired under us: look again
            }

            var durable = s.Durable;
            var count = Segment.CountOf(durable);
            var relative = target - s.BaseOffset;
            segment = s;
            if (relative >= count)
            {
                position = Segment.PositionOf(durable);
                offset = s.BaseOffset + count;
                return;
            }

            var e = s.Index.FindByOffset(relative);
            var (at, pos) = e >= 0 ? (s.Index[e].RelativeOffset, s.Index[e].Position) : (0, SegmentHeader.Size);
            var end = Segment.PositionOf(durable);
            CatchUpVerified(s, at, pos, end);
            var from = pos;
            while (at < relative)
            {
                pos += RecordLayout.Align(CheckedForSeek(s, pos, end, s.BaseOffset + at, from));
                at++;
            }

            position = pos;
            offset = target;
            return;
        }
    }

    /// <summary>
    /// The first durable record, in log order, with a timestamp ≥ <paramref name="timestamp"/>; the durable end when there
    /// is none. Records a standby copied keep their timestamps, so one may be older than a record before it: a segment
    /// is passed over only when its last timestamp (the newest of its records, or newer) is older, and in a segment the
    /// index entries carry the newest timestamp up to their record, so the last one older than the time is a start
    /// before which no record is at or after it. The segments are walked, not binary searched: their last timestamps
    /// need not grow along the log (an open that recovers several unsealed segments gives each the newest of its own
    /// records, an older version's seal may understate it, the active segment has none before its first record), so one
    /// older than the time says nothing of the segments before it
    /// (<c>CopiedTimestampTests.A_start_at_a_time_over_many_segments_…</c>).
    /// </summary>
    internal void LocateTimestamp(long timestamp, out Segment? segment, out int position, out long offset)
    {
        while (true)
        {
            var segments = Volatile.Read(ref _segments);
            if (segments.Length == 0)
            {
                LocateOffset(0, out segment, out position, out offset);
                return;
            }

            var next = segments[0].BaseOffset;
            var retired = false;
            foreach (var s in segments)
            {
                // The durable word first: the last timestamp is stored before the records it covers are published.
                var durable = s.Durable;
                if (s.LastTimestamp < timestamp)
                {
                    next = s.BaseOffset + Segment.CountOf(durable);
                    continue;
                }

                if (!s.TryAcquire())
                {
                    retired = true; // retention took it meanwhile: look again from the oldest retained segment
                    break;
                }

                var count = Segment.CountOf(s.Durable);
                if (TryFindTimestamp(s, count, timestamp, out position, out offset))
                {
                    segment = s;
                    return;
                }

                next = s.BaseOffset + count; // those searched: one made durable since may be at or after the time
                s.Release();
            }

            if (retired)
            {
                continue;
            }

            // No durable record is at or after the time: start after them (the tail).
            LocateOffset(next, out segment, out position, out offset);
            return;
        }
    }

    /// <summary>In <paramref name="s"/> (acquired), the first of its <paramref name="count"/> records with a timestamp ≥ <paramref name="timestamp"/>.</summary>
    private bool TryFindTimestamp(Segment s, int count, long timestamp, out int position, out long offset)
    {
        var e = s.Index.FindBeforeTimestamp(timestamp);
        var (at, pos) = e >= 0 ? (s.Index[e].RelativeOffset, s.Index[e].Position) : (0, SegmentHeader.Size);
        var bytes = s.Bytes;
        var end = Segment.PositionOf(s.Durable);
        CatchUpVerified(s, at, pos, end);
        var from = pos;
        while (at < count)
        {
            var length = CheckedForSeek(s, pos, end, s.BaseOffset + at, from);
            var ts = Unsafe.ReadUnaligned<long>(ref Unsafe.AsRef(in bytes[pos + RecordLayout.TimestampOffset]));
            if (ts >= timestamp)
            {
                position = pos;
                offset = s.BaseOffset + at;
                return true;
            }

            pos += RecordLayout.Align(length);
            at++;
        }

        (position, offset) = (0, 0);
        return false;
    }

    /// <summary>
    /// The length of a record a seek passes over or reads the timestamp of (at most one index interval per seek),
    /// checked: its length, key and header lengths and offset always, its CRC32C when it is at or past the segment's
    /// verified watermark (<see cref="Segment.IsVerified"/>; a good one then moves the watermark past it when the seek's
    /// records from <paramref name="from"/> join it). A damaged record, or an index entry that does not point at the
    /// record it names, ends the seek with a <see cref="JournalCorruptionException"/> naming the segment and the
    /// position (the segment <paramref name="s"/>, acquired, released first), never a start past or before the record
    /// asked for.
    /// </summary>
    private int CheckedForSeek(Segment s, int position, int end, long offset, int from)
    {
        var verified = s.IsVerified(position);
        var status = RecordLayout.Check(s.Bytes, position, end, offset, verifyCrc: !verified, out var length);
        if (!verified)
        {
            CountCrcCheck();
        }

        if (status != RecordStatus.Ok)
        {
            s.Release();
            ThrowHelper.ThrowDamagedRead(s.FilePath, position, offset, status);
        }

        if (!verified)
        {
            s.AdvanceVerified(from, Segment.Pack((int)(offset - s.BaseOffset) + 1, position + RecordLayout.Align(length)));
        }

        return length;
    }

    /// <summary>
    /// A seek that starts from record <paramref name="at"/> at <paramref name="position"/> of <paramref name="s"/>
    /// (acquired; an index entry, or the first record) past its verified watermark first checks the records from the
    /// watermark up to there (length, offset, CRC32C; at most the segment, once per process) and moves the watermark
    /// past them, so the seek and the reader after it check on from a watermark that has reached them and move it with
    /// them: a reader starting in the middle of a segment the open trusted (a subscription resuming after a restart)
    /// leaves what it checked known good to the next. It stops before a damaged record, or where the records do not
    /// lead to the entry, leaving the watermark there (nothing unchecked is ever below it); the seek then checks from
    /// the entry on as before, refusing only damage it passes. No lock, no allocation.
    /// </summary>
    private void CatchUpVerified(Segment s, int at, int position, int end)
    {
        if (s.IsVerified(position))
        {
            return; // below the watermark already, or written by this process
        }

        var watermark = s.Verified;
        var (count, pos) = (Segment.CountOf(watermark), Segment.PositionOf(watermark));
        var from = pos;
        var bytes = s.Bytes;
        while (count < at && pos < position)
        {
            var status = RecordLayout.Check(bytes, pos, end, s.BaseOffset + count, verifyCrc: true, out var length);
            CountCrcCheck();
            if (status != RecordStatus.Ok || pos + RecordLayout.Align(length) > position)
            {
                break;
            }

            pos += RecordLayout.Align(length);
            count++;
        }

        if (pos > from)
        {
            s.AdvanceVerified(from, Segment.Pack(count, pos));
        }
    }

    /// <summary>
    /// Records whose CRC32C a reader or a seek of this journal computed (those at or past their segment's verified
    /// watermark). Grows only; for tests.
    /// </summary>
    internal long CrcChecks => Volatile.Read(ref _crcChecks);

    /// <summary>A reader or a seek computed a record's CRC32C (rare: once per record per process at most, unless damaged).</summary>
    internal void CountCrcCheck() => Interlocked.Increment(ref _crcChecks);

    /// <summary>The segment starting exactly at <paramref name="baseOffset"/>, acquired; null if none (yet).</summary>
    internal Segment? AcquireSegmentStartingAt(long baseOffset)
    {
        while (true)
        {
            var segments = Volatile.Read(ref _segments);
            var i = FindSegmentIndex(segments, baseOffset);
            if (i < 0 || segments[i].BaseOffset != baseOffset)
            {
                // Retention may have removed it (a reader that lost its segment): callers re-locate.
                return null;
            }

            if (segments[i].TryAcquire())
            {
                return segments[i];
            }
        }
    }
}
