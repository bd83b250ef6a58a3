using System.Runtime.CompilerServices;
using FastBroker.Journal.Internal;

namespace FastBroker.Journal;

/// <summary>Seeks: by offset (segment, then sparse index binary search) and by time (segments by their running newest, then index binary search).</summary>
public sealed partial class JournalLog
{
    private long _crcChecks;
    private long _timeSearchProbes;
    private long _damageScanBytes;

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

    /// <summary>
    /// Finds the durable record at <paramref name="target"/> (clamped to [first, durable]) and acquires its
    /// segment: binary search over segments, binary search in the sparse index, then a scan of at most one
    /// index interval. Damaged records before the target are passed over (<see cref="NextByLengthWord"/>,
    /// <see cref="PastDamage"/>); a damaged target is landed on, never passed over, so its reader is told of it (its
    /// first read throws <see cref="JournalCorruptionException"/>, with the whole damaged run), whether an index entry
    /// points at it or not: at its own position, or at the damaged record before it whose length word hides where it
    /// lies. A seek scans a damaged run at most once (from its first damaged record to the next that checks).
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
                var length = CheckedForSeek(s, pos, end, s.BaseOffset + at, from);
                if (length >= 0)
                {
                    pos += RecordLayout.Align(length);
                    at++;
                    continue;
                }

                // A damaged record before the start asked for: on to the record after it where its length word says,
                // when that one carries the next offset (checked in turn, or landed on when it is the start); else to
                // the next record that checks.
                var next = NextByLengthWord(s, at, pos, end, count);
                if (next > 0)
                {
                    (at, pos, from) = (at + 1, next, next);
                    continue;
                }

                var (pastAt, pastPosition) = PastDamage(s, at, pos, end);
                if (pastAt < 0 || pastAt > relative)
                {
                    // The start itself does not check, and where it lies is not known past the damaged length word:
                    // the reader starts there, at the start asked for, and is told (its first read throws), never
                    // carried past it silently.
                    at = (int)relative;
                    break;
                }

                (at, pos, from) = (pastAt, pastPosition, pastPosition);
            }

            position = pos;
            offset = s.BaseOffset + at; // the target: a damaged one is the reader's to be told of
            return;
        }
    }

    /// <summary>
    /// The first durable record, in log order, with a timestamp ≥ <paramref name="timestamp"/>; the durable end when there
    /// is none. Records a standby copied keep their timestamps, so one may be older than a record before it, and the
    /// segments' last timestamps need not grow along the log (an open that recovers several unsealed segments gives each
    /// the newest of its own records, the active segment has none before its first record): one older than the time
    /// says nothing of the segments before it (<c>CopiedTimestampTests.A_start_at_a_time_over_many_segments_…</c>). Their
    /// running newest does grow (<see cref="Segment.NewestUpToEnd"/>: at least every record up to the segment's end), so a
    /// binary search over it finds the first segment where it reaches the time, before which every record is older; from
    /// there the segments are walked, each passed over when its own last timestamp (the newest of its records, or newer)
    /// is older. In a segment the index entries carry the newest timestamp up to their record, so the last one older
    /// than the time is a start before which no record is at or after it. So a search looks at about log2(segments) + 1
    /// of them when the stamps grow (<see cref="TimeSearchProbes"/>), and it starts where a walk from the oldest would.
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

            var probes = 0;
            var (low, high) = (0, segments.Length - 1); // the last one is where the walk starts if no other is
            while (low < high)
            {
                var mid = (low + high) >>> 1;
                probes++;
                if (segments[mid].NewestUpToEnd < timestamp)
                {
                    low = mid + 1; // every record up to its end is older
                }
                else
                {
                    high = mid;
                }
            }

            var next = segments[low].BaseOffset;
            var retired = false;
            for (var i = low; i < segments.Length; i++)
            {
                var s = segments[i];
                probes++;
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
                    CountTimeSearchProbes(probes);
                    segment = s;
                    return;
                }

                next = s.BaseOffset + count; // those searched: one made durable since may be at or after the time
                s.Release();
            }

            CountTimeSearchProbes(probes);
            if (retired)
            {
                continue;
            }

            // No durable record is at or after the time: start after them (the tail).
            LocateOffset(next, out segment, out position, out offset);
            return;
        }
    }

    /// <summary>
    /// In <paramref name="s"/> (acquired), the first of its <paramref name="count"/> records with a timestamp ≥
    /// <paramref name="timestamp"/>, damaged records passed over (<see cref="PastDamage"/>: the first intact one).
    /// </summary>
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
            if (length < 0)
            {
                // A damaged record: its timestamp is not to be trusted, so the search goes on from the next record that
                // checks, as a start at an offset past it does (the start is the first intact record at or after the time).
                (at, pos) = PastDamage(s, at, pos, end);
                if (at < 0)
                {
                    break; // nothing after it checks in this segment: the search goes on with the next one
                }

                from = pos;
                continue;
            }

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
    /// records from <paramref name="from"/> join it). -1 for a record that does not check (a CRC32C mismatch, a bad
    /// length, a zero length word where the segment's durable records continue, an offset out of sequence, or an index
    /// entry that does not point at the record it names): the seek passes over it (<see cref="PastDamage"/>).
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
            // Every record a seek checks lies below the segment's durable end: a zero length word (End) there is damage
            // too, passed over like the others, not an end of the records.
            return -1;
        }

        if (!verified)
        {
            s.AdvanceVerified(from, Segment.Pack((int)(offset - s.BaseOffset) + 1, position + RecordLayout.Align(length)));
        }

        return length;
    }

    /// <summary>
    /// A seek to an offset, or a search for a time, past a damaged record of <paramref name="s"/> (acquired) that it must pass over, number
    /// <paramref name="at"/> at <paramref name="position"/>: the next record whose length, offset and CRC32C all check,
    /// first where the damaged record's own length word says it ends, else the first such record at an 8-byte boundary
    /// after it with a higher offset (a damaged length word). Never a start before the record asked for, nor one past
    /// an intact record: only records that do not check are passed over. (-1, -1) when none does up to the segment's
    /// durable end (the damage runs to it, or the damaged record is its last): a search for a time then goes on with the
    /// next segment; a start at an offset uses it only to learn whether its target checks (when the record found is past
    /// the target, or there is none, the target is unreadable and its reader is told there); a reader's damaged run ends
    /// there (<see cref="DamagedRunEnd"/>). Scans the run once: bytes counted in <see cref="DamageScanBytes"/>. Every
    /// record checked counts as a CRC check; the watermark stays before the
    /// damage (docs/journal-format.md, "past a damaged record").
    /// </summary>
    private (int At, int Position) PastDamage(Segment s, int at, int position, int end)
    {
        var (found, foundAt) = PastDamageCore(s, at, position, end);
        Interlocked.Add(ref _damageScanBytes, (found < 0 ? end : foundAt) - position);
        return (found, foundAt);
    }

    private (int At, int Position) PastDamageCore(Segment s, int at, int position, int end)
    {
        var bytes = s.Bytes;
        var count = Segment.CountOf(s.Durable);
        var word = Unsafe.ReadUnaligned<uint>(ref Unsafe.AsRef(in bytes[position]));
        var next = position + RecordLayout.Align((int)Math.Min(word, (uint)(end - position)));
        if (word >= RecordLayout.HeaderSize && next < end && at + 1 < count)
        {
            CountCrcCheck();
            if (RecordLayout.Check(bytes, next, end, s.BaseOffset + at + 1, verifyCrc: true, out _) == RecordStatus.Ok)
            {
                return (at + 1, next);
            }
        }

        for (var p = position + RecordLayout.Alignment; p + RecordLayout.HeaderSize <= end; p += RecordLayout.Alignment)
        {
            var relative = Unsafe.ReadUnaligned<long>(ref Unsafe.AsRef(in bytes[p + RecordLayout.OffsetOffset])) - s.BaseOffset;
            if (relative <= at || relative >= count)
            {
                continue;
            }

            CountCrcCheck();
            if (RecordLayout.Check(bytes, p, end, s.BaseOffset + relative, verifyCrc: true, out _) == RecordStatus.Ok)
            {
                return ((int)relative, p);
            }
        }

        return (-1, -1); // nothing readable after it up to the durable end
    }

    /// <summary>
    /// The position of record <paramref name="at"/> + 1 of <paramref name="s"/> (acquired) where the length word of the
    /// damaged record <paramref name="at"/> at <paramref name="position"/> says it ends, when a record header there
    /// carries that offset (its CRC32C and lengths unchecked: the seek checks it next, or lands on it); else -1 (a
    /// damaged length word, or the damaged record is the segment's last). So a start inside a run of damaged records
    /// whose length words hold lands on the record asked for, and its reader is told of it at its own position.
    /// </summary>
    private static int NextByLengthWord(Segment s, int at, int position, int end, int count)
    {
        var bytes = s.Bytes;
        var word = Unsafe.ReadUnaligned<uint>(ref Unsafe.AsRef(in bytes[position]));
        if (word < RecordLayout.HeaderSize || word > (uint)(end - position) || at + 1 >= count)
        {
            return -1;
        }

        var next = position + RecordLayout.Align((int)word);
        return next + RecordLayout.HeaderSize <= end
            && Unsafe.ReadUnaligned<long>(ref Unsafe.AsRef(in bytes[next + RecordLayout.OffsetOffset])) == s.BaseOffset + at + 1
            ? next
            : -1;
    }

    /// <summary>
    /// Where the run of damage that starts at the damaged record a reader met, <paramref name="offset"/> at
    /// <paramref name="position"/> of <paramref name="s"/> (held by the reader), ends: the offset of the next record
    /// that checks (<see cref="PastDamage"/>, one pass over the run), or the end of the segment's durable records
    /// when none does (as durable now: records made durable later are not counted in the run). See
    /// <see cref="JournalCorruptionException.ResumeOffset"/>.
    /// </summary>
    internal long DamagedRunEnd(Segment s, long offset, int position)
    {
        var durable = s.Durable;
        var (at, _) = PastDamage(s, (int)(offset - s.BaseOffset), position, Segment.PositionOf(durable));
        return s.BaseOffset + (at < 0 ? Segment.CountOf(durable) : at);
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

    /// <summary>
    /// Segments whose timestamps a start at a time (<see cref="LocateTimestamp"/>) looked at, added when each search
    /// ends. Grows only; for tests (how many segments a search takes, not how long).
    /// </summary>
    internal long TimeSearchProbes => Volatile.Read(ref _timeSearchProbes);

    /// <summary>
    /// Bytes of damaged records that seeks and readers scanned past (<see cref="PastDamage"/>: from a damaged record to
    /// the next that checks, or the segment's durable end). Grows only; for tests (a damaged run costs one scan of it per
    /// reader that meets it, not one per offset).
    /// </summary>
    internal long DamageScanBytes => Volatile.Read(ref _damageScanBytes);

    private void CountTimeSearchProbes(int probes) => Interlocked.Add(ref _timeSearchProbes, probes);

    /// <summary>A reader or a seek computed a record's CRC32C (rare: once per record per process at most, unless damaged).</summary>
    internal void CountCrcCheck() => Interlocked.Increment(ref _crcChecks);
}
