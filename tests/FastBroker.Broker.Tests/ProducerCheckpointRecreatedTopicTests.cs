using System.Collections.Concurrent;
using FastBroker.Engine;
using FastBroker.Testing;

namespace FastBroker.BrokerTests;

/// <summary>
/// A <c>producers.state</c> whose capture point names a topic that was deleted and created again under its name since
/// (offsets restart at 0): the point is the old topic's, and every record of the new one was written after the capture,
/// so the open rescans the new topic from its start. The file here is one the broker wrote before the old topic's
/// directory was removed, put beside the new topic's journal as a standby's older copy of the file would be.
/// </summary>
public sealed class ProducerCheckpointRecreatedTopicTests
{
    private const ulong Early = 0x0E0E_0E0E_0E0E_0E07; // the old topic's first producer
    private const ulong Busy = 0x0B0B_0B0B_0B0B_0B08;  // the old topic's 200 others
    private const ulong Late = 0x0D0D_0D0D_0D0D_0D06;  // the new topic's first 10 records
    private const ulong Fresh = 0x0F0F_0F0F_0F0F_0F05; // then the new topic's others

    private static BrokerOptions SmallRescan(BrokerOptions o) => o with { ProducerRecoveryRecords = 64, AllowSmallProducerRescan = true };

    [Theory]
    [InlineData(300)] // the new topic ends past the old one's capture point (205)
    [InlineData(90)]  // the new topic ends before it
    public async Task A_capture_point_of_a_topic_created_again_since_is_not_taken_for_the_new_one(int others)
    {
        var log = new ConcurrentQueue<string>();
        await using var f = await BrokerFixture.StartAsync(SmallRescan);
        var sink = new ClaimPublishTests.RecordingSink();
        ClaimPublishTests.PublishRun(f.Broker, sink, Early, 0, 5, "e");

        ClaimPublishTests.PublishRun(f.Broker, sink, Busy, 0, 200, "b", 100);

        await sink.WaitForAsync(205);
        var old = Path.Combine(Path.GetTempPath(), $"fastbroker-recreated-{Guid.NewGuid():N}.state");
        var checkpoint = Path.Combine(f.DataDirectory, ProducerCheckpoint.FileName);
        await f.RestartAsync(SmallRescan, whileClosed: () => File.Copy(checkpoint, old)); // captured at offset 205 of the old 't'
        await f.RestartAsync(SmallRescan, whileClosed: () => Directory.Delete(Path.Combine(f.DataDirectory, "topics", "t"), recursive: true));

        // The new 't' (created by its first publish): Late at offsets 0 to 9, Fresh after it.
        sink = new ClaimPublishTests.RecordingSink();
        ClaimPublishTests.PublishRun(f.Broker, sink, Late, 0, 10, "l");

        for (var i = 0UL; i < (ulong)others; i++)
        {
            ClaimPublishTests.PublishIdempotent(f.Broker, sink, Fresh, i, "t", $"f{i}", 100 + i);
        }

        await sink.WaitForAsync(10 + others);
        using var copy = new TempDirectory("fastbroker-recreated-copy");
        await f.RestartAsync(SmallRescan, whileClosed: () => ProducerCheckpointTests.CopyDirectory(f.DataDirectory, copy.Path));
        File.Copy(old, Path.Combine(copy.Path, ProducerCheckpoint.FileName), overwrite: true);
        File.Delete(old);

        await using var opened = await Broker.OpenAsync(SmallRescan(BrokerFixture.Options(copy.Path)) with { Log = log.Enqueue });
        Assert.Equal(10L + others, ClaimPublishTests.Head(opened, "t"));
        var after = new ClaimPublishTests.RecordingSink();
        ClaimPublishTests.PublishIdempotent(opened, after, Late, 5, "t", "l5", 1);   // stored at offset 5 of the new 't', beyond the newest 64
        ClaimPublishTests.PublishIdempotent(opened, after, Late, 10, "t", "l10", 2); // new: stored once
        var outcomes = (await after.WaitForAsync(2)).OrderBy(o => o.Token).ToList();
        Assert.True(
            (outcomes[0].Offset, outcomes[0].Duplicate, outcomes[0].Error) == (5L, true, BrokerErrorCode.None),
            $"the retry of Late's sequence 5, stored at offset 5 of 't' created again after producers.state's capture (at offset 205 of the old 't'): {(outcomes[0].Error == BrokerErrorCode.None ? $"offset {outcomes[0].Offset} (duplicate {outcomes[0].Duplicate})" : $"{outcomes[0].Error} {outcomes[0].Reason}")}");
        Assert.Equal((10L + others, false, BrokerErrorCode.None), (outcomes[1].Offset, outcomes[1].Duplicate, outcomes[1].Error));
        Assert.Equal(11L + others, ClaimPublishTests.Head(opened, "t"));
        Assert.Contains(log, l => l.Contains("topic 't'", StringComparison.Ordinal) && l.Contains("written after producers.state's capture", StringComparison.Ordinal));
    }
}
