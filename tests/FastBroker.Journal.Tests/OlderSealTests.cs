using System.Buffers.Binary;
using FastBroker.Journal.Internal;
using FastBroker.Testing;

namespace FastBroker.Journal.Tests;

/// <summary>
/// Segments sealed by an older version: its seal's last timestamp could understate the segment's newest record (an open
/// that recovered the segment unsealed took its last record's stamp), and its index file's entries held each indexed
/// record's own stamp. Such a seal has no <see cref="SegmentHeader.SealFlagNewestTimestamp"/>; an open that trusts sealed
/// segments (<see cref="JournalOptions.VerifySealedSegmentsOnOpen"/> off) still takes the newest of their records, so a
/// start at a time, retention by age and <c>dump --from-time</c> go by the records, checked against a scan of every record.
/// </summary>
public class OlderSealTests
{
    private const long T0 = 1_700_000_000_000;
    private static readonly TimeSpan s_maxAge = TimeSpan.FromDays(3650);

    public static TheoryData<int, bool> Cases()
    {
        var data = new TheoryData<int, bool>();
        foreach (var ownStamps in new[] { false, true })
        {
            for (var seed = 1; seed <= 8; seed++)
            {
                data.Add(seed, ownStamps);
            }
        }

        return data;
    }

    /// <summary>
    /// A random journal of copied records (stamps that go forward, repeat, go back a little, step back far and jump ahead
    /// for one record) whose sealed segments are then given the seals and index files an older version wrote, reopened
    /// trusting its seals: every start at a time is the one a scan gives, retention by age deletes the segments whose
    /// newest record is older than the age and no other, and a dump from a time prints every record stamped at or after it.
    /// </summary>
    /// <param name="seed">The random journal's.</param>
    /// <param name="ownStamps">The index files rewritten with each indexed record's own stamp (an open rejects, and
    /// rebuilds, one whose entries go back in time); otherwise left as this version wrote them, valid.</param>
    [Theory]
    [MemberData(nameof(Cases))]
    public void A_trusting_open_of_segments_sealed_by_an_older_version_goes_by_their_records_timestamps(int seed, bool ownStamps)
    {
        using var dir = new TempDirectory();
        var options = AppendReadTests.Small with { RetentionMaxAge = s_maxAge };
        var random = new Random(seed);
        var stamps = new TimeSearchTests.Stamps(random);
        using (var journal = JournalLog.Open(dir.Path, options))
        {
            for (var i = random.Next(2000, 4000); i > 0; i--)
            {
                TimeSearchTests.Copy(journal, stamps.Next());
            }

            journal.Commit();
            var written = JournalFiles.Segments(dir.Path);
            Eventually.True(() => written.SkipLast(1).All(s => File.Exists(IndexFile.PathFor(s))), "the flusher seals every segment but the last");
        }

        var segments = JournalFiles.Segments(dir.Path);
        var newest = segments.Select(s => Stamps(s).DefaultIfEmpty(0).Max()).ToArray();
        var understated = 0;
        foreach (var path in segments.SkipLast(1))
        {
            understated += SealAsAnOlderVersion(path, ownStamps) ? 1 : 0;
        }

        Assert.True(understated > 0, $"seed {seed}: no older seal understates its segment's newest record; the test checks nothing");
        var trusting = options with { VerifySealedSegmentsOnOpen = false };
        using (var journal = JournalLog.Open(dir.Path, trusting))
        {
            TimeSearchTests.AssertEveryStart(journal, dir.Path, $"seed {seed}, {(ownStamps ? "own stamps" : "index kept")}, {understated} older seal(s) understating");

            // Retention by age at the newest stamp of a middle segment: the leading segments wholly older than it go.
            var middle = segments.Length / 2;
            var cutoff = newest[middle];
            var expected = newest.SkipLast(1).TakeWhile(n => n < cutoff).Count();
            var deleted = journal.ApplyRetention(DateTimeOffset.FromUnixTimeMilliseconds(cutoff) + s_maxAge);
            Assert.True(expected == deleted, $"seed {seed}, {(ownStamps ? "own stamps" : "index kept")}: retention by age with the cutoff at segment {middle}'s newest record ({cutoff - T0} ms after T0) deleted {deleted} segment(s); expected {expected}, those whose records are all older (newest: {string.Join(", ", newest.Select(n => n - T0))})");
            Assert.True(segments.Length - 1 == journal.Recovery.OlderSealsScanned + journal.Recovery.IndexesRebuilt, $"every sealed segment is scanned: {journal.Recovery}");
        }

        // dump --from-time reads what the seals alone do not bound.
        var all = new List<(long Offset, long Timestamp)>();
        JournalInspector.Dump(dir.Path, null, null, long.MaxValue, r => all.Add((r.Offset, r.Timestamp)), out var problem);
        Assert.Null(problem);
        foreach (var t in all.Where((_, i) => i % 97 == 0).Select(r => r.Timestamp))
        {
            var visited = new List<long>();
            JournalInspector.Dump(dir.Path, null, t, long.MaxValue, r => visited.Add(r.Offset), out problem);
            Assert.Null(problem);
            var expected = all.Where(r => r.Timestamp >= t).Select(r => r.Offset).ToList();
            Assert.True(expected.SequenceEqual(visited), $"seed {seed}: dump --from-time {t - T0} (after T0) printed {visited.Count} record(s); expected {expected.Count}");
        }
    }

    /// <summary>
    /// Retention by age keeps a segment whose seal, as an older version wrote it, says it is older than the age while a
    /// record in it is not: a trusting open takes its newest record's stamp.
    /// </summary>
    [Fact]
    public void Retention_by_age_after_a_trusting_open_keeps_a_segment_whose_older_seal_understates_a_record_within_the_age()
    {
        using var dir = new TempDirectory();
        var options = AppendReadTests.Small with { RetentionMaxAge = TimeSpan.FromSeconds(100), RetentionCheckInterval = TimeSpan.FromHours(1), VerifySealedSegmentsOnOpen = false };
        using (var journal = JournalLog.Open(dir.Path, options))
        {
            TimeSearchTests.Copy(journal, T0 + 200_000);
            while (journal.SegmentCount < 2)
            {
                TimeSearchTests.Copy(journal, T0 + 50_000);
            }

            journal.Commit();
            Eventually.True(() => File.Exists(IndexFile.PathFor(JournalFiles.Segments(dir.Path)[0])), "the flusher seals the rolled segment");
        }

        Assert.True(SealAsAnOlderVersion(JournalFiles.Segments(dir.Path)[0], ownStamps: false));
        using var reopened = JournalLog.Open(dir.Path, options);
        var deleted = reopened.ApplyRetention(DateTimeOffset.FromUnixTimeMilliseconds(T0 + 250_000));
        Assert.True(deleted == 0, $"retention by age at T0 + 250 s (100 s) deleted {deleted} segment(s), the first holding a record stamped T0 + 200 s under a seal an older version wrote saying T0 + 50 s ({reopened.Recovery})");
        Assert.Equal(0, reopened.FirstOffset);
    }

    /// <summary>A seal this version writes says its last timestamp bounds the records: a trusting open reads its index file and scans nothing.</summary>
    [Fact]
    public void A_trusting_open_scans_no_segment_sealed_by_this_version()
    {
        using var dir = new TempDirectory();
        var options = AppendReadTests.Small with { VerifySealedSegmentsOnOpen = false };
        using (var journal = JournalLog.Open(dir.Path, options))
        {
            while (journal.SegmentCount < 4)
            {
                TimeSearchTests.Copy(journal, T0 + journal.NextOffset);
            }

            journal.Commit();
            var written = JournalFiles.Segments(dir.Path);
            Eventually.True(() => written.SkipLast(1).All(s => File.Exists(IndexFile.PathFor(s))), "the flusher seals every segment but the last");
        }

        using var reopened = JournalLog.Open(dir.Path, options);
        Assert.True(reopened.Recovery.OlderSealsScanned == 0 && reopened.Recovery.IndexesRebuilt == 0 && reopened.Recovery.SegmentsVerified == 1, reopened.Recovery.ToString());
    }

    /// <summary>The timestamps of a segment file's records, in log order.</summary>
    private static List<long> Stamps(string path)
    {
        var bytes = File.ReadAllBytes(path);
        return [.. JournalFiles.Records(path).Select(r => BinaryPrimitives.ReadInt64LittleEndian(bytes.AsSpan(r.Position + RecordLayout.TimestampOffset)))];
    }

    /// <summary>
    /// Rewrites a sealed segment's seal as an older version wrote it after recovering the segment unsealed (its last
    /// record's stamp, no flags) and, with <paramref name="ownStamps"/>, its index file with each indexed record's own stamp.
    /// True when that understates the segment's newest record.
    /// </summary>
    private static bool SealAsAnOlderVersion(string path, bool ownStamps)
    {
        var stamps = Stamps(path);
        var header = new byte[SegmentHeader.Size];
        int count, end;
        using (var file = new FileStream(path, FileMode.Open, FileAccess.ReadWrite))
        {
            file.ReadExactly(header);
            Assert.True(SegmentHeader.TryReadSeal(header, out count, out end, out _));
            Assert.True(SegmentHeader.SealBoundsNewest(header), $"{Path.GetFileName(path)}: this version's seal lacks the newest-timestamp flag");
            SegmentHeader.WriteSeal(header, count, end, stamps[^1], T0, flags: 0);
            file.Position = 0;
            file.Write(header);
        }

        if (!ownStamps)
        {
            return stamps[^1] < stamps.Max();
        }

        var index = IndexFile.PathFor(path);
        var entries = IndexFile.TryRead(index, long.Parse(Path.GetFileNameWithoutExtension(path), System.Globalization.CultureInfo.InvariantCulture), end, count);
        Assert.NotNull(entries);
        var records = JournalFiles.Records(path);
        IndexFile.Write(index, records[0].Offset, end, [.. entries.Select(e => e with { Timestamp = stamps[e.RelativeOffset] })]);
        return stamps[^1] < stamps.Max();
    }
}
