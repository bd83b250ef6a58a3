using System.Globalization;
using FastBroker.Journal;
using FastBroker.Testing;

namespace FastBroker.ReplicationTests.Failover;

/// <summary>
/// <c>fastbroker journal dump --past-damage</c> on a journal whose sealed second segment has a damaged record (a payload
/// byte flipped): plain <c>dump</c> stops there; with the flag it prints every other record, those after the damaged
/// one in the same segment included, says on stderr what it skipped, and still exits 1.
/// </summary>
public class JournalDumpPastDamageTests
{
    [Fact]
    public async Task Dump_past_damage_prints_the_records_after_a_damaged_one_says_what_it_skipped_and_exits_1()
    {
        using var dir = new TempDirectory("fastbroker-cli-dump-past");
        var journal = dir.Combine("journal");
        var options = JournalOptions.Default with { SegmentSize = 64 << 10, Durability = DurabilityPolicy.None };
        const int Records = 3000;
        using (var log = JournalLog.Open(journal, options))
        {
            for (var i = 0; i < Records; i++)
            {
                Assert.True(log.TryAppend(System.Text.Encoding.UTF8.GetBytes($"record {i} of the journal"), out _));
            }

            log.Commit();
            Eventually.True(() => Directory.GetFiles(journal, "*.idx").Length >= log.SegmentCount - 1, "closed segments get sealed by the flusher");
        }

        var victim = RecordDamage.FlipPayloadByte(journal, 1, 5);

        string[] plain = ["journal", "dump", journal];
        var stopped = await CliOutcome.RunAsync(plain);
        Assert.True(stopped.ExitCode == 1, stopped.Describe(plain));
        Assert.Equal(victim.Offset, stopped.Output.Split('\n', StringSplitOptions.RemoveEmptyEntries).Length);

        string[] args = ["journal", "dump", journal, "--past-damage"];
        var outcome = await CliOutcome.RunAsync(args);
        var lines = outcome.Output.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        var context = $"{outcome.Describe(args)}\n{lines.Length} line(s)";
        Assert.True(outcome.ExitCode == 1, context);
        var offsets = lines.Select(l => long.Parse(l["offset=".Length..l.IndexOf(' ', StringComparison.Ordinal)], CultureInfo.InvariantCulture)).ToArray();
        Assert.Equal(Enumerable.Range(0, Records).Select(i => (long)i).Where(o => o != victim.Offset), offsets);
        Assert.Contains(string.Create(CultureInfo.InvariantCulture, $"record {victim.Offset + 1} of the journal"), lines[(int)victim.Offset], StringComparison.Ordinal);
        var skipped = string.Create(CultureInfo.InvariantCulture, $"after {victim.Offset} record(s): skipped damage: {Path.GetFileName(victim.Segment)}: CRC32C mismatch at byte {victim.Position} (offset {victim.Offset}); the dump goes on at offset {victim.Offset + 1}");
        Assert.True(outcome.Errors.Contains(skipped, StringComparison.Ordinal), $"expected on stderr: {skipped}\n{context}");
        Assert.True(outcome.Errors.Contains($"printed {Records - 1} record(s) past 1 damaged place(s)", StringComparison.Ordinal), context);
        Assert.False(outcome.HasStackTrace, context);
    }
}
