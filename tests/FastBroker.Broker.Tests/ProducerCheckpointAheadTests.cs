using System.Collections.Concurrent;
using FastBroker.Testing;
using static FastBroker.BrokerTests.ProducerCheckpointScenario;

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
    [Fact]
    public async Task A_copy_two_captures_behind_its_producers_state_refuses_a_retry_of_a_record_it_holds()
    {
        var log = new ConcurrentQueue<string>();
        await using var f = await BrokerFixture.StartAsync(SmallRescan);
        var sink = new ClaimPublishTests.RecordingSink();
        await PublishEarlyThenBusyAsync(f.Broker, sink); // Early's 0..9 out of the 64-record rescan

        // The copy's journal: offsets 0 to 109. Then the primary stores Early's 10 and 11, each followed by a capture
        // (the writes at close and open): its producers.state names Early at 11 (offset 111), the previous place at 10
        // (offset 110), both beyond the copy's end.
        using var copy = new TempDirectory("fastbroker-ahead-copy");
        var stored = await CopyThenStoreEarlysTenAndElevenAsync(f, sink, 110, copy.Path);
        Assert.Equal((111L, BrokerErrorCode.None), stored.Where(o => o.Token == 11).Select(o => (o.Offset, o.Error)).Last());

        await using var promoted = await OpenCopyAsync(copy.Path, log);
        Assert.Equal(110L, ClaimPublishTests.Head(promoted, "t"));
        var outcomes = await RetryEarlyAsync(promoted, "t", 5, 10); // 5: stored at offset 5, beyond the rescan of the newest records; 10: lost with the failover, stored once
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
        ClaimPublishTests.PublishRun(f.Broker, sink, Early, 0, 10, "e", topic: "u");
        ClaimPublishTests.PublishRun(f.Broker, sink, Busy, 0, 100, "b", 100, topic: "u"); // Early's 0..9 out of u's rescan
        ClaimPublishTests.PublishIdempotent(f.Broker, sink, Busy, 100, "t", "b100", 200);
        await sink.WaitForAsync(111);

        // The copy: u's offsets 0 to 109, t's offset 0. The primary then stores Early's 10 and 11 in t, each followed by
        // a capture: its producers.state names Early in t only, beyond the copy's end; u's capture point is its end.
        using var copy = new TempDirectory("fastbroker-ahead-copy");
        await CopyThenStoreEarlysTenAndElevenAsync(f, sink, 111, copy.Path);

        await using var promoted = await OpenCopyAsync(copy.Path, log);
        var outcome = (await RetryEarlyAsync(promoted, "u", 5)).Single(); // stored at offset 5 of u, beyond its rescan
        Assert.True((outcome.Offset, outcome.Duplicate, outcome.Error) == (5L, true, BrokerErrorCode.None),
            $"the retry of Early's sequence 5, stored at offset 5 of u, its producers.state naming Early's 11 and 10 beyond the end of t: {Describe(outcome)}; log: [{string.Join(" | ", log)}]");
        Assert.Equal(110L, ClaimPublishTests.Head(promoted, "u"));
    }

    /// <summary>
    /// Copies <paramref name="f"/>'s data directory to <paramref name="copy"/> at a restart, then stores Early's 10 and
    /// 11 in t (tokens alike) with a restart between, and puts the <c>producers.state</c> the last close wrote in the
    /// copy: every outcome of <paramref name="sink"/> (<paramref name="answered"/> before) once both are answered.
    /// </summary>
    private static async Task<List<ClaimPublishTests.Outcome>> CopyThenStoreEarlysTenAndElevenAsync(BrokerFixture f, ClaimPublishTests.RecordingSink sink, int answered, string copy)
    {
        await RestartCopyingAsync(f, copy);
        ClaimPublishTests.PublishIdempotent(f.Broker, sink, Early, 10, "t", "e10", 10);
        await sink.WaitForAsync(answered + 1);
        await f.RestartAsync(SmallRescan);
        ClaimPublishTests.PublishIdempotent(f.Broker, sink, Early, 11, "t", "e11", 11);
        var stored = await sink.WaitForAsync(answered + 2);
        await RestartCopyingCheckpointAsync(f, copy);
        return stored;
    }
}
