using System.Collections.Concurrent;
using FastBroker.Engine;
using FastBroker.Testing;

namespace FastBroker.BrokerTests;

/// <summary>
/// The open's producer rescan of a topic reads at most <see cref="ProducerCheckpoint.RescanLimit"/> records (lowered to
/// 100 here, <see cref="BrokerOptions.ProducerRescanLimit"/>): a <c>producers.state</c> captured further back than that
/// (a standby's copy trailing its journal) leaves the records between the capture point and the limit unread. The open
/// logs it with that range, and what it then does is what the line says: a producer whose records after its entry lie
/// only in that range has such a retry stored again; one the rescan saw later, or one whose retry is of its entry or
/// below, is still deduplicated.
/// </summary>
public sealed class ProducerRescanLimitTests
{
    private const ulong Early = 0x0E0E_0E0E_0E0E_0E07; // 0..4 before the capture, 5..9 after it, all beyond the limit
    private const ulong Late = 0x0D0D_0D0D_0D0D_0D06;  // 0..2 after the capture only, beyond the limit
    private const ulong Busy = 0x0B0B_0B0B_0B0B_0B08;  // 200 records after them, its newest 100 rescanned

    private static BrokerOptions Limited(BrokerOptions o) => o with { ProducerRecoveryRecords = 64, AllowSmallProducerRescan = true, ProducerRescanLimit = 100 };

    [Fact]
    public async Task A_capture_point_beyond_the_rescan_limit_is_logged_with_the_records_left_unread_and_their_producers()
    {
        var log = new ConcurrentQueue<string>();
        await using var f = await BrokerFixture.StartAsync(Limited);
        var sink = new ClaimPublishTests.RecordingSink();
        ClaimPublishTests.PublishRun(f.Broker, sink, Early, 0, 5, "e");

        await sink.WaitForAsync(5);
        var trailing = Path.Combine(Path.GetTempPath(), $"fastbroker-limit-{Guid.NewGuid():N}.state");
        await ProducerCheckpointScenario.RestartKeepingCheckpointAsync(f, trailing, Limited); // Early at 4, taken at offset 5
        ClaimPublishTests.PublishRun(f.Broker, sink, Early, 5, 10, "e");

        ClaimPublishTests.PublishRun(f.Broker, sink, Late, 0, 3, "l", 10); // offsets 10 to 12

        ClaimPublishTests.PublishRun(f.Broker, sink, Busy, 0, 200, "b", 100); // offsets 13 to 212

        await sink.WaitForAsync(213);
        using var copy = new TempDirectory("fastbroker-limit-copy");
        await ProducerCheckpointScenario.RestartCopyingAsync(f, copy.Path, Limited);
        ProducerCheckpointScenario.InstallCheckpoint(trailing, copy.Path);

        // 213 records, captured at 5: 208 to rescan, over the limit of 100, so offsets 5 to 112 are not read.
        await using var promoted = await ProducerCheckpointScenario.OpenCopyAsync(copy.Path, log, Limited);
        var line = Assert.Single(log, l => l.Contains("records a restart rescans", StringComparison.Ordinal));
        Assert.Contains("topic 't': producers.state was captured 208 records before the journal's end, more than the 100 records", line, StringComparison.Ordinal);
        Assert.Contains("offsets 5 to 112 only are not deduplicated", line, StringComparison.Ordinal);
        Assert.Contains($"producers.state names 1 producer no rescan saw, which may have written there: {Early:x16} (", line, StringComparison.Ordinal);
        Assert.DoesNotContain($"{Busy:x16}", line, StringComparison.Ordinal); // the rescan saw it

        var after = new ClaimPublishTests.RecordingSink();
        ClaimPublishTests.PublishIdempotent(promoted, after, Early, 2, "t", "e2", 1);   // below its entry: refused
        ClaimPublishTests.PublishIdempotent(promoted, after, Early, 4, "t", "e4", 2);   // its entry's own record
        ClaimPublishTests.PublishIdempotent(promoted, after, Busy, 50, "t", "b50", 3);  // at 63, unread, below what the rescan saw: refused
        ClaimPublishTests.PublishIdempotent(promoted, after, Busy, 150, "t", "b150", 4); // at 163, rescanned
        ClaimPublishTests.PublishIdempotent(promoted, after, Early, 7, "t", "e7", 5);   // at 7, unread, above its entry: stored again
        ClaimPublishTests.PublishIdempotent(promoted, after, Late, 1, "t", "l1", 6);    // at 11, unread, unknown: stored again
        var outcomes = (await after.WaitForAsync(6)).OrderBy(o => o.Token).ToList();
        Assert.Equal(BrokerErrorCode.InvalidArgument, outcomes[0].Error);
        Assert.Equal((4L, true, BrokerErrorCode.None), (outcomes[1].Offset, outcomes[1].Duplicate, outcomes[1].Error));
        Assert.Equal(BrokerErrorCode.InvalidArgument, outcomes[2].Error);
        Assert.Equal((163L, true, BrokerErrorCode.None), (outcomes[3].Offset, outcomes[3].Duplicate, outcomes[3].Error));
        Assert.Equal((213L, false, BrokerErrorCode.None), (outcomes[4].Offset, outcomes[4].Duplicate, outcomes[4].Error));
        Assert.Equal((214L, false, BrokerErrorCode.None), (outcomes[5].Offset, outcomes[5].Duplicate, outcomes[5].Error));
        Assert.Equal(215L, ClaimPublishTests.Head(promoted, "t"));
    }

    /// <summary>
    /// The line names at most 8 (Broker.RescanLimitLoggedProducers) of the producers <c>producers.state</c>
    /// names that no rescan saw (lowest ids first), then how many more.
    /// </summary>
    [Fact]
    public async Task The_rescan_limits_line_names_a_bounded_number_of_producers()
    {
        const int Unseen = 11;
        const int Logged = 8; // Broker.RescanLimitLoggedProducers
        var log = new ConcurrentQueue<string>();
        await using var f = await BrokerFixture.StartAsync(Limited);
        var sink = new ClaimPublishTests.RecordingSink();
        for (var i = 0UL; i < Unseen; i++)
        {
            ClaimPublishTests.PublishIdempotent(f.Broker, sink, Early + i, 0, "t", $"e{i}", i);
        }

        await sink.WaitForAsync(Unseen);
        var trailing = Path.Combine(Path.GetTempPath(), $"fastbroker-limit-{Guid.NewGuid():N}.state");
        await ProducerCheckpointScenario.RestartKeepingCheckpointAsync(f, trailing, Limited); // taken at offset 11
        ClaimPublishTests.PublishRun(f.Broker, sink, Busy, 0, 200, "b", 100); // offsets 11 to 210

        await sink.WaitForAsync(Unseen + 200);
        using var copy = new TempDirectory("fastbroker-limit-copy");
        await ProducerCheckpointScenario.RestartCopyingAsync(f, copy.Path, Limited);
        ProducerCheckpointScenario.InstallCheckpoint(trailing, copy.Path);

        await using var promoted = await ProducerCheckpointScenario.OpenCopyAsync(copy.Path, log, Limited);
        var line = Assert.Single(log, l => l.Contains("records a restart rescans", StringComparison.Ordinal));
        var named = string.Join(", ", Enumerable.Range(0, Logged).Select(i => $"{Early + (ulong)i:x16}"));
        Assert.Contains($"producers.state names {Unseen} producers no rescan saw, which may have written there: {named} and {Unseen - Logged} more (", line, StringComparison.Ordinal);
        Assert.DoesNotContain($"{Early + (ulong)Logged:x16}", line, StringComparison.Ordinal);
    }
}
