using System.Globalization;
using FastBroker.Journal;
using FastBroker.Testing;

namespace FastBroker.ReplicationTests.Failover;

/// <summary>
/// <c>fastbroker journal dump</c> and <c>verify</c> (the CLI as a process) when a segment file they list is not there
/// when they open it: a dangling symbolic link in the oldest segment's place is listed and then refused as missing
/// (ENOENT), every time, as a file retention removes between the listing and the open. With no process holding the
/// journal open that is an error line and exit 4, never a stack trace; with the journal open (its lock held by this
/// test process), the oldest such file is taken as removed by retention: stderr says so and the rest is read, exit 0.
/// </summary>
public class JournalRemovedSegmentTests
{
    [Fact]
    public async Task A_segment_gone_when_it_is_opened_is_an_error_line_or_retention_at_the_oldest_end_of_an_open_journal()
    {
        using var dir = new TempDirectory("fastbroker-cli-dump-removed");
        var journal = dir.Combine("journal");
        var options = JournalOptions.Default with { SegmentSize = 64 << 10, Durability = DurabilityPolicy.None };
        long records;
        using (var log = JournalLog.Open(journal, options))
        {
            var payload = new byte[100];
            while (log.SegmentCount < 4)
            {
                Assert.True(log.TryAppend(payload, out _));
            }

            log.Commit();
            records = log.NextOffset;
        }

        var segments = Directory.GetFiles(journal, "*.seg").Order(StringComparer.Ordinal).ToArray();
        var oldest = Path.GetFileName(segments[0]);
        var next = long.Parse(Path.GetFileNameWithoutExtension(segments[1]), CultureInfo.InvariantCulture);
        File.Delete(segments[0]);
        File.CreateSymbolicLink(segments[0], segments[0] + ".gone"); // listed as a segment file, then ENOENT on open
        string[] dump = ["journal", "dump", journal];
        string[] verify = ["journal", "verify", journal];

        // Nobody has the journal open: not retention; an error line naming the file, exit 4.
        var removed = $"{oldest}: the segment file was removed while the journal was being read, and no process has the journal open";
        foreach (var args in new[] { dump, verify })
        {
            var outcome = await CliOutcome.RunAsync(args);
            Assert.True(outcome.ExitCode == 4 && outcome.Errors.Contains(removed, StringComparison.Ordinal) && !outcome.HasStackTrace, $"expected exit 4 and on stderr: {removed}\n{outcome.Describe(args)}");
        }

        // Open (this process holds its lock): retention at the oldest end, said on stderr; the rest is read.
        const string Retention = "removed by retention while reading";
        using (new FileStream(Path.Combine(journal, "journal.lock"), FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.None))
        {
            var liveDump = await CliOutcome.RunAsync(dump);
            var lines = liveDump.Output.Split('\n', StringSplitOptions.RemoveEmptyEntries);
            var context = $"{liveDump.Describe(dump)}\n{lines.Length} line(s), the first: {lines.FirstOrDefault()}";
            Assert.True(liveDump.ExitCode == 0 && liveDump.Errors.Contains($"{oldest}: {Retention}", StringComparison.Ordinal) && !liveDump.HasStackTrace, context);
            Assert.True(lines.Length == records - next, context);
            Assert.StartsWith(string.Create(CultureInfo.InvariantCulture, $"offset={next} "), lines[0], StringComparison.Ordinal);

            var liveVerify = await CliOutcome.RunAsync(verify);
            Assert.True(liveVerify.ExitCode == 0 && liveVerify.Errors.Contains($"{oldest}: {Retention}", StringComparison.Ordinal), liveVerify.Describe(verify));
            Assert.Contains(string.Create(CultureInfo.InvariantCulture, $"{segments.Length - 1} segment(s), {records - next} record(s)"), liveVerify.Output, StringComparison.Ordinal);
        }
    }

    /// <summary>
    /// A segment gone when it is opened while an older one is still there is not retention (exit 4) even on a journal
    /// open in another process: stderr then says the journal is open, as dump and verify say it whenever they end, and
    /// how far dump got, so exit 4 explains itself.
    /// </summary>
    [Fact]
    public async Task Exit_4_on_a_journal_open_in_another_process_says_it_is_open()
    {
        using var dir = new TempDirectory("fastbroker-cli-dump-removed-open");
        var journal = dir.Combine("journal");
        var options = JournalOptions.Default with { SegmentSize = 64 << 10, Durability = DurabilityPolicy.None };
        using (var log = JournalLog.Open(journal, options))
        {
            var payload = new byte[100];
            while (log.SegmentCount < 4)
            {
                Assert.True(log.TryAppend(payload, out _));
            }

            log.Commit();
        }

        var segments = Directory.GetFiles(journal, "*.seg").Order(StringComparer.Ordinal).ToArray();
        var second = long.Parse(Path.GetFileNameWithoutExtension(segments[1]), CultureInfo.InvariantCulture);
        File.Delete(segments[1]);
        File.CreateSymbolicLink(segments[1], segments[1] + ".gone"); // listed, then ENOENT on open; the oldest is still there
        var removed = $"{Path.GetFileName(segments[1])}: the segment file was removed while the journal was being read, yet an older segment file ({Path.GetFileName(segments[0])}) is still there";
        var open = $"the journal in {journal} is open in another process (its journal.lock is held)";
        using (new FileStream(Path.Combine(journal, "journal.lock"), FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.None))
        {
            string[] dump = ["journal", "dump", journal];
            var dumped = await CliOutcome.RunAsync(dump);
            var stopped = string.Create(CultureInfo.InvariantCulture, $"stopped after {second} record(s): {removed}");
            Assert.True(dumped.ExitCode == 4 && dumped.Errors.Contains(stopped, StringComparison.Ordinal) && dumped.Errors.Contains(open, StringComparison.Ordinal) && !dumped.HasStackTrace, $"expected exit 4 and on stderr: {stopped}, and: {open}\n{dumped.Describe(dump)}");

            string[] verify = ["journal", "verify", journal];
            var verified = await CliOutcome.RunAsync(verify);
            Assert.True(verified.ExitCode == 4 && verified.Errors.Contains(removed, StringComparison.Ordinal) && verified.Errors.Contains(open, StringComparison.Ordinal) && !verified.HasStackTrace, $"expected exit 4 and on stderr: {removed}, and: {open}\n{verified.Describe(verify)}");
        }
    }
}
