using System.Collections.Concurrent;
using FastBroker.Engine;
using FastBroker.Testing;
using static FastBroker.BrokerTests.ProducerCheckpointScenario;

namespace FastBroker.BrokerTests;

/// <summary>
/// A <c>producers.state</c> whose capture point names a topic that was deleted and created again under its name since
/// (offsets restart at 0): the point is the old topic's, and every record of the new one was written after the capture,
/// so the open rescans the new topic from its start. The file here is one the broker wrote before the old topic's
/// directory was removed, put beside the new topic's journal as a standby's older copy of the file would be.
/// </summary>
public sealed class ProducerCheckpointRecreatedTopicTests
{
    private const ulong Late = 0x0D0D_0D0D_0D0D_0D06;  // the new topic's first 10 records
    private const ulong Fresh = 0x0F0F_0F0F_0F0F_0F05; // then the new topic's others

    [Theory]
    [InlineData(300)] // the new topic ends past the old one's capture point (205)
    [InlineData(90)]  // the new topic ends before it
    public Task A_capture_point_of_a_topic_created_again_since_is_not_taken_for_the_new_one(int others) =>
        RecreateAsync(others, SmallRescan);

    /// <summary>
    /// The old topic's records, the capture, the deletion, the new topic's creation and records all in one millisecond
    /// of the stamp clock (here a clock that never moves): no record of the new topic is stamped after the capture, so
    /// only the topic's creation identity in the capture point tells the journals apart.
    /// </summary>
    [Fact]
    public Task A_capture_point_of_a_topic_created_again_within_the_captures_millisecond_is_not_taken_for_the_new_one()
    {
        var clock = new ManualClock(); // never moved: every stamp and every capture in the same millisecond
        return RecreateAsync(300, o => SmallRescan(o) with { StampClock = clock });
    }

    /// <summary>
    /// A wall clock stepped back between a topic's records and the capture: its records are stamped after the capture's
    /// time, yet the capture point is this journal's (the same creation of the topic), so the open rescans from it as
    /// always, not from the topic's first record.
    /// </summary>
    [Fact]
    public async Task A_wall_clock_stepped_back_before_the_capture_does_not_rescan_the_topic_from_its_start()
    {
        var clock = new ManualClock();
        BrokerOptions Stepped(BrokerOptions o) => SmallRescan(o) with { StampClock = clock };
        var log = new ConcurrentQueue<string>();
        await using var f = await BrokerFixture.StartAsync(Stepped);
        await PublishEarlyThenBusyAsync(f.Broker, new ClaimPublishTests.RecordingSink(), 5, 200); // Early's 0..4 out of the 64-record rescan
        clock.Advance(TimeSpan.FromHours(-1)); // the close's capture is timed an hour before every record's stamp
        using var copy = new TempDirectory("fastbroker-stepped-copy");
        await RestartCopyingAsync(f, copy.Path, Stepped);

        await using var opened = await OpenCopyAsync(copy.Path, log, Stepped);
        Assert.True(
            !log.Any(l => l.Contains("rescanned from its first record", StringComparison.Ordinal)),
            $"the open rescanned 't' from its first record although producers.state was captured in this creation of it: {string.Join(" | ", log)}");
        var outcomes = await RetryEarlyAsync(opened, "t", 4, 2); // 4: the entry's own record, beyond the rescan; 2: below it, refused
        Assert.Equal((4L, true, BrokerErrorCode.None), (outcomes[0].Offset, outcomes[0].Duplicate, outcomes[0].Error));
        Assert.Equal(BrokerErrorCode.InvalidArgument, outcomes[1].Error);
        Assert.Equal(205L, ClaimPublishTests.Head(opened, "t"));
    }

    /// <summary>
    /// A capture point carries the topic's creation (version 8); a version 7 file's points (none) are read with 0, which
    /// the open checks by the capture's time as before.
    /// </summary>
    [Fact]
    public void A_capture_point_carries_the_topics_creation_and_a_version_7_file_is_still_read()
    {
        using var dir = new TempDirectory("fastbroker-checkpoint-v8");
        using var journal = FastBroker.Journal.JournalLog.Open(dir.Combine("j"), FastBroker.Journal.JournalOptions.Default with { SegmentSize = 64 << 10 });
        var topic = new TopicState("t", TopicOptions.Default, "t", journal, null, incarnation: 0x1234_5678_9ABC_DEF0);
        var checkpoint = new ProducerCheckpoint(dir.Path, null, () => [topic]);
        checkpoint.WriteNow(new ProducerRegistry(1 << 16), closing: true);
        ProducerCheckpoint.Load(dir.Path, (_, _) => null, _ => topic, out var problem, out _, out var points, out var time);
        Assert.Null(problem);
        Assert.NotNull(time);
        Assert.Equal(new ProducerCheckpoint.CapturePoint(0, 0x1234_5678_9ABC_DEF0), Assert.Single(points!, p => p.Key == "t").Value);

        // The same capture as version 7 wrote it: no producers, no epochs, the time, one point without the creation.
        var v7 = new List<byte>();
        v7.AddRange("FBPS"u8.ToArray());
        v7.AddRange(BitConverter.GetBytes(7u));
        v7.AddRange(BitConverter.GetBytes(0u));
        v7.AddRange(BitConverter.GetBytes(0u));
        v7.AddRange(BitConverter.GetBytes(1_000L));
        v7.AddRange(BitConverter.GetBytes(1u));
        v7.AddRange(BitConverter.GetBytes(205L));
        v7.AddRange(BitConverter.GetBytes((ushort)1));
        v7.Add((byte)'t');
        v7.AddRange(BitConverter.GetBytes(FastBroker.Journal.Crc32C.Compute(v7.ToArray())));
        File.WriteAllBytes(Path.Combine(dir.Path, ProducerCheckpoint.FileName), [.. v7]);
        ProducerCheckpoint.Load(dir.Path, (_, _) => null, _ => topic, out problem, out _, out points, out time);
        Assert.Null(problem);
        Assert.Equal(1_000L, time);
        Assert.Equal(new ProducerCheckpoint.CapturePoint(205, 0), Assert.Single(points!, p => p.Key == "t").Value);
    }

    private static async Task RecreateAsync(int others, Func<BrokerOptions, BrokerOptions> configure)
    {
        var log = new ConcurrentQueue<string>();
        await using var f = await BrokerFixture.StartAsync(configure);
        await PublishEarlyThenBusyAsync(f.Broker, new ClaimPublishTests.RecordingSink(), 5, 200);
        var old = Path.Combine(Path.GetTempPath(), $"fastbroker-recreated-{Guid.NewGuid():N}.state");
        await RestartKeepingCheckpointAsync(f, old, configure); // captured at offset 205 of the old 't'
        await f.RestartAsync(configure, whileClosed: () => Directory.Delete(Path.Combine(f.DataDirectory, "topics", "t"), recursive: true));

        // The new 't' (created by its first publish): Late at offsets 0 to 9, Fresh after it.
        var sink = new ClaimPublishTests.RecordingSink();
        ClaimPublishTests.PublishRun(f.Broker, sink, Late, 0, 10, "l");
        ClaimPublishTests.PublishRun(f.Broker, sink, Fresh, 0, (ulong)others, "f", 100);
        await sink.WaitForAsync(10 + others);
        using var copy = new TempDirectory("fastbroker-recreated-copy");
        await RestartCopyingAsync(f, copy.Path, configure);
        InstallCheckpoint(old, copy.Path);

        await using var opened = await OpenCopyAsync(copy.Path, log, configure);
        Assert.Equal(10L + others, ClaimPublishTests.Head(opened, "t"));
        var outcomes = await RetryAsync(opened, "t", Late, "l", 5, 10); // 5: stored at offset 5 of the new 't', beyond the newest 64; 10: new, stored once
        Assert.True(
            (outcomes[0].Offset, outcomes[0].Duplicate, outcomes[0].Error) == (5L, true, BrokerErrorCode.None),
            $"the retry of Late's sequence 5, stored at offset 5 of 't' created again after producers.state's capture (at offset 205 of the old 't'): {Describe(outcomes[0])}");
        Assert.Equal((10L + others, false, BrokerErrorCode.None), (outcomes[1].Offset, outcomes[1].Duplicate, outcomes[1].Error));
        Assert.Equal(11L + others, ClaimPublishTests.Head(opened, "t"));
        Assert.Contains(log, l => l.Contains("topic 't'", StringComparison.Ordinal) && l.Contains("rescanned from its first record", StringComparison.Ordinal));
    }
}
