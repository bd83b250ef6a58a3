using FastBroker.Journal;
using FastBroker.Testing;

namespace FastBroker.ReplicationTests.Failover;

/// <summary>
/// <c>fastbroker journal dump</c> names a record's flags (<c>flags=producer</c>, <c>flags=tombstone|expires</c>), with
/// bits it does not know in hex: it printed the number (<c>flags=512</c>, the broker's fb-producer bit).
/// </summary>
public sealed class JournalDumpFlagTests
{
    [Fact]
    public async Task Dump_names_record_flags_and_shows_unknown_bits_in_hex()
    {
        using var dir = new TempDirectory("fastbroker-cli-dump-flags");
        var journal = dir.Combine("journal");
        using (var log = JournalLog.Open(journal, JournalOptions.Default with { SegmentSize = 64 << 10, Durability = DurabilityPolicy.None }))
        {
            Assert.True(log.TryAppend(default, default, "plain"u8, RecordFlags.None, out _));
            Assert.True(log.TryAppend(default, default, "producer"u8, RecordFlags.HasProducer, out _));
            Assert.True(log.TryAppend(default, default, "gone"u8, RecordFlags.Tombstone | RecordFlags.HasExpiry, out _));
            Assert.True(log.TryAppend(default, default, "future"u8, RecordFlags.Control | (RecordFlags)0x8000, out _));
            log.Commit();
        }

        var lines = await Cli.RunAsync("journal", "dump", journal);
        Assert.Equal(4, lines.Count);
        Assert.DoesNotContain("flags=", lines[0], StringComparison.Ordinal);
        Assert.Contains(" flags=producer ", lines[1], StringComparison.Ordinal);
        Assert.Contains(" flags=tombstone|expires ", lines[2], StringComparison.Ordinal);
        Assert.Contains(" flags=control|0x8000 ", lines[3], StringComparison.Ordinal);
    }
}
