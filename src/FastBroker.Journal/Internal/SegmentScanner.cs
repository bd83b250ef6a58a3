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

    /// <summary>How many record frames start in [<paramref name="from"/>, <paramref name="to"/>): at least one if any byte is there.</summary>
    internal static int CountFrames(ReadOnlySpan<byte> bytes, int from, int to)
    {
        var frames = 0;
        var position = from;
        while (position < to)
        {
            frames++;
            if (position + 4 > bytes.Length)
            {
                break;
            }

            var length = Unsafe.ReadUnaligned<uint>(ref Unsafe.AsRef(in bytes[position]));
            if (length < RecordLayout.HeaderSize || length > (uint)(bytes.Length - position))
            {
                break;
            }

            position += RecordLayout.Align((int)length);
        }

        return frames;
    }

    /// <summary>One past the last non-zero byte at or after <paramref name="from"/>, or <paramref name="from"/> if all zero.</summary>
    internal static int EndOfNonZero(ReadOnlySpan<byte> bytes, int from)
    {
        var last = bytes.Slice(from).LastIndexOfAnyExcept((byte)0);
        return last < 0 ? from : from + last + 1;
    }
}
