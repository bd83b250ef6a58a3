using System.Collections.Concurrent;
using FastBroker.Engine;
using FastBroker.Testing;

namespace FastBroker.BrokerTests;

/// <summary>
/// A <c>producers.state</c> captured ahead of the journal it is opened with (a standby's copy still catching up when its
/// primary died, a journal that lost its unsynced tail while the file survived): an entry whose newest and previous
/// records the journal both lacks vouches for nothing, and the producer's records the journal does hold may lie beyond
/// the rescan from the file's capture points (before them, in this topic or another). The open rescans every topic
/// from its first record then, so that a retry of any record the node holds is refused or answered as a duplicate,
/// never stored again. The rescan of the newest records is cut to 64 records.
/// </summary>
public sealed class ProducerCheckpointAheadTests
{
    private const ulong Early = 0x0E0E_0E0E_0E0E_0E07; // its first records are pushed out of the rescan by Busy's
    private const ulong Busy = 0x0B0B_0B0B_0B0B_0B08;

    private static BrokerOptions SmallRescan(BrokerOptions o) => o with { ProducerRecoveryRecords = 64, AllowSmallProducerRescan = true };

    [Fact]
    public async Task A_copy_two_captures_behind_its_producers_state_refuses_a_retry_of_a_record_it_holds()
    {
        var log = new ConcurrentQueue<string>();
        await using var f = await BrokerFixture.StartAsync(SmallRescan);
        var sink = new ClaimPublishTests.RecordingSink();
        ClaimPublishTests.PublishRun(f.Broker, sink, Early, 0, 10, "e");
        ClaimPublishTests.PublishRun(f.Broker, sink, Busy, 0, 100, "b", 100); // Early's 0..9 out of the 64-record rescan
        await sink.WaitForAsync(110);

        // The copy's journal: offsets 0 to 109. Then the primary stores Early's 10 and 11, each followed by a capture
        // (the writes at close and open): its producers.state names Early at 11 (offset 111), the previous place at 10
        // (offset 110), both beyond the copy's end.
        using var copy = new TempDirectory("fastbroker-ahead-copy");
        await f.RestartAsync(SmallRescan, whileClosed: () => ProducerCheckpointTests.CopyDirectory(f.DataDirectory, copy.Path));
        ClaimPublishTests.PublishIdempotent(f.Broker, sink, Early, 10, "t", "e10", 10);
        await sink.WaitForAsync(111);
        await f.RestartAsync(SmallRescan);
        ClaimPublishTests.PublishIdempotent(f.Broker, sink, Early, 11, "t", "e11", 11);
        var stored = await sink.WaitForAsync(112);
        Assert.Equal((111L, BrokerErrorCode.None), stored.Where(o => o.Token == 11).Select(o => (o.Offset, o.Error)).Last());
        var primaryCheckpoint = Path.Combine(f.DataDirectory, ProducerCheckpoint.FileName);
        await f.RestartAsync(SmallRescan, whileClosed: () => File.Copy(primaryCheckpoint, Path.Combine(copy.Path, ProducerCheckpoint.FileName), overwrite: true));

        await using var promoted = await Broker.OpenAsync(SmallRescan(BrokerFixture.Options(copy.Path)) with { Log = log.Enqueue });
        Assert.Equal(110L, ClaimPublishTests.Head(promoted, "t"));
        var after = new ClaimPublishTests.RecordingSink();
        ClaimPublishTests.PublishIdempotent(promoted, after, Early, 5, "t", "e5", 1);   // stored at offset 5, beyond the rescan of the newest records
        ClaimPublishTests.PublishIdempotent(promoted, after, Early, 10, "t", "e10", 2); // lost with the failover: stored once
        var outcomes = (await after.WaitForAsync(2)).OrderBy(o => o.Token).ToList();
        Assert.True((outcomes[0].Offset, outcomes[0].Duplicate, outcomes[0].Error) == (5L, true, BrokerErrorCode.None),
            $"the retry of Early's sequence 5, stored at offset 5 of the copy, whose producers.state names Early's 11 and 10 beyond its end: {Describe(outcomes[0])}; log: [{string.Join(" | ", log)}]");
        Assert.Equal((110L, false, BrokerErrorCode.None), (outcomes[1].Offset, outcomes[1].Duplicate, outcomes[1].Error));
        Assert.Equal(111L, ClaimPublishTests.Head(promoted, "t"));
        Assert.Contains(log, l => l.Contains("captured ahead of this journal", StringComparison.Ordinal) && l.Contains("'t'", StringComparison.Ordinal));
    }

    /// <summary>
    /// The producer's records the copy holds are in another topic, whose capture point the copy's journal reaches: that
    /// topic too is rescanned from its first record, not from its point.
    /// </summary>
    [Fact]
    public async Task A_copy_behind_its_producers_state_in_one_topic_refuses_a_retry_of_a_record_it_holds_in_another()
    {
        var log = new ConcurrentQueue<string>();
        await using var f = await BrokerFixture.StartAsync(SmallRescan);
        var sink = new ClaimPublishTests.RecordingSink();
        for (var i = 0UL; i < 10; i++)
        {
            ClaimPublishTests.PublishIdempotent(f.Broker, sink, Early, i, "u", $"e{i}", i);
        }

        for (var i = 0UL; i < 100; i++)
        {
            ClaimPublishTests.PublishIdempotent(f.Broker, sink, Busy, i, "u", $"b{i}", 100 + i); // Early's 0..9 out of u's rescan
        }

        ClaimPublishTests.PublishIdempotent(f.Broker, sink, Busy, 100, "t", "b100", 200);
        await sink.WaitForAsync(111);

        // The copy: u's offsets 0 to 109, t's offset 0. The primary then stores Early's 10 and 11 in t, each followed by
        // a capture: its producers.state names Early in t only, beyond the copy's end; u's capture point is its end.
        using var copy = new TempDirectory("fastbroker-ahead-copy");
        await f.RestartAsync(SmallRescan, whileClosed: () => ProducerCheckpointTests.CopyDirectory(f.DataDirectory, copy.Path));
        ClaimPublishTests.PublishIdempotent(f.Broker, sink, Early, 10, "t", "e10", 10);
        await sink.WaitForAsync(112);
        await f.RestartAsync(SmallRescan);
        ClaimPublishTests.PublishIdempotent(f.Broker, sink, Early, 11, "t", "e11", 11);
        await sink.WaitForAsync(113);
        var primaryCheckpoint = Path.Combine(f.DataDirectory, ProducerCheckpoint.FileName);
        await f.RestartAsync(SmallRescan, whileClosed: () => File.Copy(primaryCheckpoint, Path.Combine(copy.Path, ProducerCheckpoint.FileName), overwrite: true));

        await using var promoted = await Broker.OpenAsync(SmallRescan(BrokerFixture.Options(copy.Path)) with { Log = log.Enqueue });
        var after = new ClaimPublishTests.RecordingSink();
        ClaimPublishTests.PublishIdempotent(promoted, after, Early, 5, "u", "e5", 1); // stored at offset 5 of u, beyond its rescan
        var outcome = (await after.WaitForAsync(1)).Single();
        Assert.True((outcome.Offset, outcome.Duplicate, outcome.Error) == (5L, true, BrokerErrorCode.None),
            $"the retry of Early's sequence 5, stored at offset 5 of u, its producers.state naming Early's 11 and 10 beyond the end of t: {Describe(outcome)}; log: [{string.Join(" | ", log)}]");
        Assert.Equal(110L, ClaimPublishTests.Head(promoted, "u"));
    }

    private static string Describe(ClaimPublishTests.Outcome o) =>
        o.Error == BrokerErrorCode.None ? $"offset {o.Offset} (duplicate {o.Duplicate})" : $"{o.Error} {o.Reason}";
}
