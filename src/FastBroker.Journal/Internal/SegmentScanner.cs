using System.Runtime.CompilerServices;

namespace FastBroker.Journal.Internal;

/// <summary>Walks records from a position, checking each, optionally rebuilding the sparse index as it goes.</summary>
internal static class SegmentScanner
{
    internal struct Result
    {
        public int EndPosition;
        public int RecordCount;

        /// <summary>
        /// The newest timestamp of the records scanned (0 for none): their greatest, not the last one's. A record copied
        /// by replication keeps its timestamp (<see cref="JournalLog.TryAppendRecords"/>), which may be older than the one
        /// before it; the segment's last timestamp (its seal, retention by age, a dump's skip by time) must bound them all.
        /// </summary>
        public long LastTimestamp;
        public RecordStatus Stop;
    }

    /// <summary>
    /// Scans [<paramref name="position"/>, <paramref name="limit"/>) starting at record number
    /// <paramref name="count"/>; stops at the first record that is not <see cref="RecordStatus.Ok"/>.
    /// Index entries follow the writer's rule: the first record at or after every interval boundary.
    /// </summary>
    internal static Result Scan(ReadOnlySpan<byte> bytes, int position, int limit, long baseOffset, int count, bool verifyCrc, SparseIndex? index, int interval)
    {
        var nextIndex = index is { Count: > 0 } ? index[index.Count - 1].Position + interval : position;
        long lastTimestamp = 0;
        RecordStatus status;
        while (true)
        {
            status = RecordLayout.Check(bytes, position, limit, baseOffset + count, verifyCrc, out var length);
            if (status != RecordStatus.Ok)
            {
                break;
            }

            var timestamp = Unsafe.ReadUnaligned<long>(ref Unsafe.AsRef(in bytes[position + RecordLayout.TimestampOffset]));
            lastTimestamp = Math.Max(lastTimestamp, timestamp);
            if (index is not null && position >= nextIndex)
            {
                index.Add(count, position, lastTimestamp); // the newest so far, as the writer's entries (SparseIndex)
                nextIndex = position + interval;
            }

            position += RecordLayout.Align(length);
            count++;
        }

        return new Result { EndPosition = position, RecordCount = count, LastTimestamp = lastTimestamp, Stop = status };
    }

    /// <summary>
    /// How many records a torn tail or a repair's cut drops from [<paramref name="from"/>, <paramref name="to"/>), the
    /// first of them at <paramref name="firstOffset"/>: up to the newest record in the range whose length, offset and
    /// CRC32C check (the records between, damaged or not, are dropped with it), found as a dump past damage finds the
    /// next record: where a good record's length word points, else the next 8-byte boundary holding a record with a
    /// higher offset that checks. At least one when any byte is there (the damaged record itself). Following length
    /// words alone undercounts: a damaged length word of the first record (past the segment, zero, or pointing into a
    /// payload) hid every record after it, 1 reported for thousands dropped. A record may end past
    /// <paramref name="to"/> (its payload's last bytes zero): only where it starts must be before it.
    /// </summary>
    internal static int CountDropped(ReadOnlySpan<byte> bytes, int from, int to, long firstOffset)
    {
        if (to <= from)
        {
            return 0;
        }

        var newest = firstOffset - 1;
        var position = from;
        to = Math.Min(to, bytes.Length);
        while (position < to && position + RecordLayout.HeaderSize <= bytes.Length)
        {
            // A record at this position holds at most the offset of the one at `from` plus one per header's worth of
            // bytes before it: a bound that also keeps a stray word from being taken for a far offset.
            var offset = Unsafe.ReadUnaligned<long>(ref Unsafe.AsRef(in bytes[position + RecordLayout.OffsetOffset]));
            if (offset > newest && offset - firstOffset <= (position - from) / RecordLayout.HeaderSize
                && RecordLayout.Check(bytes, position, bytes.Length, offset, verifyCrc: true, out var length) == RecordStatus.Ok)
            {
                newest = offset;
                position += RecordLayout.Align(length);
                continue;
            }

            position += 8;
        }

        return (int)Math.Max(1, newest - firstOffset + 1);
    }

    /// <summary>One past the last non-zero byte at or after <paramref name="from"/>, or <paramref name="from"/> if all zero.</summary>
    internal static int EndOfNonZero(ReadOnlySpan<byte> bytes, int from)
    {
        var last = bytes.Slice(from).LastIndexOfAnyExcept((byte)0);
        return last < 0 ? from : from + last + 1;
    }
}
