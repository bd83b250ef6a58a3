using System.Buffers.Binary;
using FastBroker.Journal.Internal;

namespace FastBroker.Journal;

// A dump past damage (journal dump --past-damage): finding the next record that checks after a damaged one.
public static partial class JournalInspector
{
    /// <summary>
    /// As <see cref="Dump(string, long?, long?, long, RecordVisitor, out string?, out bool, out IReadOnlyList{string})"/>;
    /// with <paramref name="pastDamage"/>, a damaged record does not stop the dump: it is passed over to the next record
    /// of its segment whose length, offset and CRC32C check, and <paramref name="pastDamage"/> gets a line saying what
    /// was skipped (the rest of the segment when no record after it checks, the dump going on with the next segment).
    /// <paramref name="problem"/> then names only what stopped the dump (a torn tail, a gap, a bad segment header).
    /// </summary>
    public static long Dump(string directory, long? fromOffset, long? fromTimestamp, long maxCount, RecordVisitor visitor, Action<string>? pastDamage, out string? problem, out bool journalOpen, out IReadOnlyList<string> removedWhileReading)
    {
        var probe = new OpenProbe(directory);
        var removed = new List<string>();
        string? found = null;
        // Set while the visitor runs and left set if it throws: what it throws is its own, never a segment removed.
        var visiting = false;
        RecordVisitor guarded = record =>
        {
            visiting = true;
            visitor(record);
            visiting = false;
        };
        var visited = Inspecting(directory, probe, () => visiting, () => DumpFiles(directory, fromOffset, fromTimestamp, maxCount, guarded, pastDamage, probe, removed, out found));
        (problem, journalOpen, removedWhileReading) = (found, probe.Open, removed);
        return visited;
    }

    /// <summary>
    /// After the damaged record <paramref name="count"/> at <paramref name="position"/> of a segment (based at
    /// <paramref name="baseOffset"/>, records up to <paramref name="limit"/>): the position and number of the next
    /// record whose length, offset and CRC32C all check, first where the damaged record's length word points, else at
    /// the first 8-byte boundary after it holding a record with a higher offset; (-1, -1) when none does. Tells
    /// <paramref name="pastDamage"/> what was skipped.
    /// </summary>
    private static (int Position, int Count) PassDamage(ReadOnlySpan<byte> bytes, int position, int limit, long baseOffset, int count, string damage, Action<string> pastDamage)
    {
        var found = (Position: -1, Count: -1);
        var word = position + 4 <= limit ? BinaryPrimitives.ReadUInt32LittleEndian(bytes[position..]) : 0;
        var next = (long)position + RecordLayout.Align((int)Math.Min(word, (uint)limit));
        if (word >= RecordLayout.HeaderSize && next < limit
            && RecordLayout.Check(bytes, (int)next, limit, baseOffset + count + 1, verifyCrc: true, out _) == RecordStatus.Ok)
        {
            found = ((int)next, count + 1);
        }

        for (var p = position + RecordLayout.Alignment; found.Position < 0 && p + RecordLayout.HeaderSize <= limit; p += RecordLayout.Alignment)
        {
            var relative = BinaryPrimitives.ReadInt64LittleEndian(bytes[(p + RecordLayout.OffsetOffset)..]) - baseOffset;
            if (relative > count && relative < int.MaxValue && RecordLayout.Check(bytes, p, limit, baseOffset + relative, verifyCrc: true, out _) == RecordStatus.Ok)
            {
                found = (p, (int)relative);
            }
        }

        pastDamage(found.Position < 0
            ? $"skipped damage: {damage}; no record after it in its segment checks: offsets from {baseOffset + count} to the segment's end are not printed, the dump goes on with the next segment"
            : $"skipped damage: {damage}; the dump goes on at offset {baseOffset + found.Count} (byte {found.Position}){(found.Count - count > 1 ? $", offsets {baseOffset + count} to {baseOffset + found.Count - 1} not printed" : $", offset {baseOffset + count} not printed")}");
        return found;
    }
}
