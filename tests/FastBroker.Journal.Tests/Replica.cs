using FastBroker.Testing;

namespace FastBroker.Journal.Tests;

/// <summary>Test-side replication: varied primaries, copying runs the way a standby does, and byte comparisons.</summary>
internal static class Replica
{
    internal const long T0 = 1_700_000_000_000;

    /// <summary>
    /// Appends records with every shape the format has: empty and long keys, header blocks, all flags, payloads
    /// from 0 bytes to a third of a 64 KiB segment, explicit timestamps that sometimes go backwards (and are raised).
    /// </summary>
    internal static void AppendVaried(JournalLog journal, int count, int seed)
    {
        var rng = new Random(seed);
        var headers = new byte[256];
        for (var i = 0; i < count; i++)
        {
            byte[] key = rng.Next(3) == 0 ? [] : Bytes(rng, rng.Next(1, 41));
            var headerLength = 0;
            for (var h = rng.Next(4); h > 0; h--)
            {
                headerLength += RecordHeaderReader.Write(headers.AsSpan(headerLength), Bytes(rng, rng.Next(1, 12)), Bytes(rng, rng.Next(0, 30)));
            }

            var roll = rng.Next(1000);
            var payloadLength = roll < 5 ? rng.Next(12_000, 21_000) : roll < 60 ? rng.Next(1_000, 8_000) : rng.Next(0, 300);
            var flags = (RecordFlags)rng.Next(4);
            var timestamp = T0 + (journal.NextOffset * 5) - (i % 10 == 9 ? 40 : 0);
            Assert.True(journal.TryAppend(key, headers.AsSpan(0, headerLength), Bytes(rng, payloadLength), flags, timestamp, out _));
            if (i % 16 == 15)
            {
                journal.Commit();
            }
        }

        journal.Commit();
    }

    /// <summary>
    /// Copies [<paramref name="from"/>, <paramref name="until"/>) from <paramref name="primary"/> to
    /// <paramref name="standby"/> as runs of random size, handling back-pressure like a standby (commit, wait,
    /// resend the rest). Returns how many times the standby pushed back.
    /// </summary>
    internal static int Copy(JournalLog primary, JournalLog standby, long from = 0, long until = long.MaxValue, int seed = 1, int maxRunBytes = 16 << 10)
    {
        var rng = new Random(seed);
        var pushedBack = 0;
        using var reader = primary.OpenReader(ReadStart.FromOffset(from), verifyChecksums: true);
        Assert.Equal(from, reader.NextOffset);
        while (reader.NextOffset < until && reader.TryReadRun(rng.Next(1, maxRunBytes), out var run))
        {
            var bytes = run.Bytes;
            var first = run.FirstOffset;
            if (first + run.RecordCount > until)
            {
                bytes = bytes.Slice(0, StoredLengthOf(bytes, (int)(until - first)));
            }

            while (!standby.TryAppendRecords(bytes, first, out var appended))
            {
                pushedBack++;
                bytes = bytes.Slice(StoredLengthOf(bytes, appended));
                first += appended;
                Assert.Equal(first, standby.NextOffset);
                standby.Commit();
                Assert.True(standby.WaitForDurable(standby.NextOffset - 1, Eventually.DefaultTimeout));
            }

            standby.Commit();
        }

        return pushedBack;
    }

    /// <summary>Bytes taken by the first <paramref name="count"/> records of a run (padding included).</summary>
    internal static int StoredLengthOf(ReadOnlySpan<byte> records, int count)
    {
        var position = 0;
        for (var i = 0; i < count; i++)
        {
            Assert.True(JournalRecord.TryParse(records.Slice(position), verifyChecksum: true, out _, out var consumed));
            position += consumed;
        }

        return position;
    }

    /// <summary>The journal's records from <paramref name="from"/>, as stored (header included, no padding).</summary>
    internal static List<byte[]> RawRecords(JournalLog journal, long from = 0)
    {
        var list = new List<byte[]>();
        using var reader = journal.OpenReader(ReadStart.FromOffset(from), verifyChecksums: true);
        while (reader.TryRead(out var record))
        {
            Assert.Equal(from + list.Count, record.Offset);
            list.Add(record.Raw.ToArray());
        }

        return list;
    }

    /// <summary>
    /// Same segment and index file names; segment files identical from the first record to the end of the file
    /// (the header differs only in creation and seal times); index files identical byte for byte.
    /// </summary>
    internal static void AssertSameFiles(string primaryDirectory, string standbyDirectory, bool compareIndexes = true)
    {
        var names = Names(primaryDirectory, "*.seg");
        Assert.Equal(names, Names(standbyDirectory, "*.seg"));
        Assert.True(names.Length > 1, "several segments");
        foreach (var name in names)
        {
            var a = File.ReadAllBytes(Path.Combine(primaryDirectory, name));
            var b = File.ReadAllBytes(Path.Combine(standbyDirectory, name));
            Assert.Equal(a.Length, b.Length);
            Assert.True(a.AsSpan(24, 12).SequenceEqual(b.AsSpan(24, 12)), $"{name}: header base offset and segment size");
            var same = a.AsSpan(JournalFiles.SegmentHeaderSize).CommonPrefixLength(b.AsSpan(JournalFiles.SegmentHeaderSize));
            Assert.True(same == a.Length - JournalFiles.SegmentHeaderSize, $"{name}: first difference at byte {JournalFiles.SegmentHeaderSize + same}");
        }

        if (compareIndexes)
        {
            var indexes = Names(primaryDirectory, "*.idx");
            Assert.Equal(indexes, Names(standbyDirectory, "*.idx"));
            Assert.NotEmpty(indexes);
            foreach (var name in indexes)
            {
                Assert.True(File.ReadAllBytes(Path.Combine(primaryDirectory, name)).AsSpan().SequenceEqual(File.ReadAllBytes(Path.Combine(standbyDirectory, name))), $"index {name}");
            }
        }
    }

    private static string[] Names(string directory, string pattern) =>
        [.. Directory.GetFiles(directory, pattern).Select(p => Path.GetFileName(p)).Order(StringComparer.Ordinal)];

    private static byte[] Bytes(Random rng, int length)
    {
        var bytes = new byte[length];
        rng.NextBytes(bytes);
        return bytes;
    }
}
