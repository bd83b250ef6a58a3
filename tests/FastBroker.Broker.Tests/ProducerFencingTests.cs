using FastBroker.Engine;
using FastBroker.Testing;
using static FastBroker.BrokerTests.ClaimPublishTests;

namespace FastBroker.BrokerTests;

/// <summary>
/// Producer epochs (<see cref="Broker.InitProducer"/>): a new instance of a producer id fences the older ones, in the
/// running broker and after a restart (the epoch is in <c>producers.epochs</c> from the moment it is given, and in each
/// record's producer header). Each epoch's sequences are deduplicated on their own, so no message is confirmed as a
/// duplicate of another instance's.
/// </summary>
public sealed class ProducerFencingTests
{
    private const ulong Id = 0x0F0F_0F0F_0F0F_0F01;

    [Fact]
    public async Task A_new_instance_fences_the_old_one_and_neither_is_taken_for_the_others_retry()
    {
        await using var f = await BrokerFixture.StartAsync();
        var old = await StartOldInstanceAsync(f.Broker, Id, stored: 5);
        var (nextNew, current) = f.Broker.InitProducer(Id);
        Assert.Equal(5UL, nextNew);
        Assert.True(current > old);

        var after = new RecordingSink();
        PublishIdempotent(f.Broker, after, Id, 5, "t", "old5", 1, epoch: old);        // the old instance goes on
        PublishIdempotent(f.Broker, after, Id, 5, "t", "new5", 2, epoch: current);    // the new one, same sequence
        PublishIdempotent(f.Broker, after, Id, 4, "t", "old4-retry", 3, epoch: old);  // an old retry: fenced too
        var outcomes = await after.WaitForAsync(3);
        Assert.Equal(BrokerErrorCode.ProducerFenced, outcomes.Single(o => o.Token == 1).Error);
        Assert.Equal((5L, false, BrokerErrorCode.None), Outcome(outcomes, 2));
        Assert.Equal(BrokerErrorCode.ProducerFenced, outcomes.Single(o => o.Token == 3).Error);
        Assert.Equal(6, Head(f.Broker, "t"));

        Assert.Equal(BrokerErrorCode.ProducerFenced, Assert.Throws<BrokerException>(() => f.Broker.InitProducer(Id, old)).Code);
        Assert.Equal((6UL, current), f.Broker.InitProducer(Id, current)); // a reconnect of the new one resumes
    }

    /// <summary>
    /// A resumed epoch this broker cannot have given (more than a day ahead of its clock, above every epoch of the id) is
    /// refused: taken, it fenced every later instance of the id until the expiry, and at ulong.MaxValue the next new
    /// instance's epoch (newest + 1) wrapped to the current time, below it, so that instance was fenced at once.
    /// </summary>
    [Fact]
    public async Task A_resumed_epoch_never_given_is_refused_and_fences_nothing()
    {
        await using var f = await BrokerFixture.StartAsync();
        var now = (ulong)DateTimeOffset.UtcNow.ToUnixTimeMilliseconds();
        foreach (var bogus in new[] { ulong.MaxValue, now + (2 * ProducerRegistry.MaxEpochLeadMs) })
        {
            Assert.Equal(BrokerErrorCode.InvalidArgument, Assert.Throws<BrokerException>(() => f.Broker.InitProducer(Id, bogus)).Code);
        }

        // A peer's clock a minute ahead is no reason to refuse.
        Assert.Equal((0UL, now + 60_000), f.Broker.InitProducer(Id, now + 60_000));

        var (next, current) = f.Broker.InitProducer(Id);
        Assert.Equal(0UL, next);
        Assert.True(current > now + 60_000, $"epoch {current}");
        var sink = new RecordingSink();
        PublishIdempotent(f.Broker, sink, Id, 0, "t", "new0", 1, epoch: current);
        Assert.Equal((0L, false, BrokerErrorCode.None), Outcome(await sink.WaitForAsync(1), 1));
    }

    /// <summary>
    /// An in-process publish is held to the rule a resume over the network is (<see cref="A_resumed_epoch_never_given_is_refused_and_fences_nothing"/>):
    /// an epoch above the newest of the id and more than a day ahead of the broker's clock was never given, and is refused
    /// (InvalidArgument, not stored). Before, it was stored, became the newest epoch of the id, and fenced every real
    /// instance: at ulong.MaxValue the next new instance's epoch (newest + 1) wrapped to the current time, below it.
    /// </summary>
    [Fact]
    public async Task A_publish_with_an_epoch_never_given_is_refused_and_fences_nothing()
    {
        await using var f = await BrokerFixture.StartAsync();
        var now = (ulong)DateTimeOffset.UtcNow.ToUnixTimeMilliseconds();
        var sink = new RecordingSink();
        PublishIdempotent(f.Broker, sink, Id, 0, "t", "bogus-max", 1, epoch: ulong.MaxValue);        // an id with no epoch yet
        PublishIdempotent(f.Broker, sink, Id, 0, "t", "bogus-ahead", 2, epoch: now + (2 * ProducerRegistry.MaxEpochLeadMs));
        var refused = await sink.WaitForAsync(2);
        Assert.All(refused, o => Assert.Equal(BrokerErrorCode.InvalidArgument, o.Error));
        Assert.Contains("never given", refused[0].Reason, StringComparison.Ordinal);
        Assert.Equal(0, Head(f.Broker, "t"));

        var (next, current) = f.Broker.InitProducer(Id);
        Assert.Equal(0UL, next);
        Assert.True(current >= now && current < now + ProducerRegistry.MaxEpochLeadMs, $"epoch {current}");
        var after = new RecordingSink();
        PublishIdempotent(f.Broker, after, Id, 0, "t", "new0", 3, epoch: current);
        Assert.Equal((0L, false, BrokerErrorCode.None), Outcome(await after.WaitForAsync(1), 3));

        // The same for an id whose producer the broker knows: still refused, and the instance goes on.
        PublishIdempotent(f.Broker, after, Id, 1, "t", "bogus-known", 4, epoch: ulong.MaxValue);
        PublishIdempotent(f.Broker, after, Id, 1, "t", "new1", 5, epoch: current);
        var outcomes = await after.WaitForAsync(3);
        Assert.Equal(BrokerErrorCode.InvalidArgument, outcomes.Single(o => o.Token == 4).Error);
        Assert.Equal((1L, false, BrokerErrorCode.None), Outcome(outcomes, 5));
        Assert.Equal((2UL, current), f.Broker.InitProducer(Id, current));
    }

    [Fact]
    public async Task Messages_the_old_instance_queued_before_the_new_one_started_are_fenced_when_they_reach_the_journaler()
    {
        // INIT is answered from the session's thread; the old instance's messages already in the input ring reach the
        // journaler after it and carry the old epoch: refused, so they never take the sequences the new one was given.
        await using var f = await BrokerFixture.StartAsync();
        var (_, old) = f.Broker.InitProducer(Id);
        Assert.True(f.Broker.TryBeginPublish(1, out var claim));
        var queued = new RecordingSink();
        claim.Add("t"u8.ToArray(), default, default, Seq("old0"), new PublishParameters(ProducerId: Id, ProducerSequence: 0, ProducerEpoch: old), queued, 1);
        var (next, current) = f.Broker.InitProducer(Id); // before the commit: the journaler has not seen it
        claim.Commit();
        Assert.Equal(0UL, next);
        Assert.Equal(BrokerErrorCode.ProducerFenced, (await queued.WaitForAsync(1))[0].Error);

        var sink = new RecordingSink();
        PublishIdempotent(f.Broker, sink, Id, 0, "t", "new0", 2, epoch: current);
        Assert.Equal((0L, false, BrokerErrorCode.None), Outcome(await sink.WaitForAsync(1), 2));
    }

    [Fact]
    public async Task Fencing_survives_a_restart_once_the_new_instance_has_written()
    {
        await using var f = await BrokerFixture.StartAsync();
        var (_, old) = f.Broker.InitProducer(Id);
        var sink = new RecordingSink();
        PublishIdempotent(f.Broker, sink, Id, 0, "t", "old0", 0, epoch: old);
        await sink.WaitForAsync(1); // stored before the new instance starts (queued, it would be fenced)
        var (_, current) = f.Broker.InitProducer(Id);
        PublishIdempotent(f.Broker, sink, Id, 1, "t", "new1", 1, epoch: current);
        Assert.All(await sink.WaitForAsync(2), o => Assert.Equal(BrokerErrorCode.None, o.Error));
        await f.RestartAsync();

        Assert.Equal(BrokerErrorCode.ProducerFenced, Assert.Throws<BrokerException>(() => f.Broker.InitProducer(Id, old)).Code);
        var after = new RecordingSink();
        PublishIdempotent(f.Broker, after, Id, 2, "t", "old2", 1, epoch: old);
        PublishIdempotent(f.Broker, after, Id, 1, "t", "new1", 2, epoch: current); // a retry of the new one's
        var outcomes = await after.WaitForAsync(2);
        Assert.Equal(BrokerErrorCode.ProducerFenced, outcomes.Single(o => o.Token == 1).Error);
        Assert.Equal((1L, true, BrokerErrorCode.None), Outcome(outcomes, 2));
        Assert.Equal(2, Head(f.Broker, "t"));
    }

    /// <summary>
    /// InitProducer writes the new epoch to <c>producers.epochs</c> (fsync'd) before it answers, so a restart before the new
    /// instance's first record still fences the old one: before, only records carried epochs, and the old instance resumed
    /// and stored its messages until the new one's first message landed.
    /// </summary>
    [Fact]
    public async Task A_restart_before_the_new_instance_wrote_still_fences_the_old_one()
    {
        await using var f = await BrokerFixture.StartAsync();
        var old = await StartOldInstanceAsync(f.Broker, Id, stored: 3);
        var (next, current) = f.Broker.InitProducer(Id);
        Assert.Equal(3UL, next);
        await f.RestartAsync(); // nothing written with the new epoch: no record carries it

        await AssertOldFencedNewResumesAsync(f.Broker, old, current);
    }

    /// <summary>
    /// As above after a crash (the data directory copied as it is once InitProducer returned, as a <c>kill -9</c> then
    /// leaves it: no file written at close): the epoch is on disk before it is answered.
    /// </summary>
    [Fact]
    public async Task A_crash_right_after_a_new_instance_was_answered_still_fences_the_old_one()
    {
        await using var f = await BrokerFixture.StartAsync();
        var old = await StartOldInstanceAsync(f.Broker, Id, stored: 3);
        var (next, current) = f.Broker.InitProducer(Id);
        Assert.Equal(3UL, next);
        using var crashed = new TempDirectory("fastbroker-epoch-crash");
        ProducerCheckpointScenario.CopyDirectory(f.DataDirectory, crashed.Path);

        await using var broker = await Broker.OpenAsync(BrokerFixture.Options(crashed.Path));
        await AssertOldFencedNewResumesAsync(broker, old, current);
    }

    /// <summary>
    /// A new epoch that cannot be written to <c>producers.epochs</c> (here a directory where the temporary file goes) is not
    /// answered: StorageError, with the reason. The running broker fences with it all the same (the old instance's resume
    /// is refused), and once the file can be written again the next new instance's epoch is answered, and survives a
    /// restart.
    /// </summary>
    [Fact]
    public async Task A_new_epoch_that_cannot_be_written_is_refused_with_StorageError()
    {
        await using var f = await BrokerFixture.StartAsync();
        var old = await StartOldInstanceAsync(f.Broker, Id, stored: 2);
        var blocker = Path.Combine(f.DataDirectory, ProducerCheckpointFile.EpochsName + ".tmp");
        Directory.CreateDirectory(blocker); // the file is written there first, then renamed over producers.epochs
        try
        {
            var refused = Assert.Throws<BrokerException>(() => f.Broker.InitProducer(Id));
            Assert.Equal(BrokerErrorCode.StorageError, refused.Code);
            Assert.Contains("could not be persisted", refused.Message, StringComparison.Ordinal);
            Assert.Contains(blocker, refused.Message, StringComparison.Ordinal);

            Assert.Equal(BrokerErrorCode.ProducerFenced, Assert.Throws<BrokerException>(() => f.Broker.InitProducer(Id, old)).Code);
            Assert.Equal(BrokerErrorCode.StorageError, Assert.Throws<BrokerException>(() => f.Broker.InitProducer(Id)).Code); // every attempt writes
        }
        finally
        {
            Directory.Delete(blocker);
        }

        var (next, current) = f.Broker.InitProducer(Id);
        Assert.Equal(2UL, next);
        Assert.True(current > old, $"epoch {current} after {old}");
        await f.RestartAsync(); // nothing written with the new epoch: producers.epochs (and the close's producers.state) hold it

        Assert.Equal(BrokerErrorCode.ProducerFenced, Assert.Throws<BrokerException>(() => f.Broker.InitProducer(Id, old)).Code);
        Assert.Equal((2UL, current), f.Broker.InitProducer(Id, current));
    }

    /// <summary>After a restart that no record of <paramref name="current"/> survived: <paramref name="old"/> (which stored 0-2) is fenced, the new instance resumes.</summary>
    private static async Task AssertOldFencedNewResumesAsync(Broker broker, ulong old, ulong current)
    {
        Assert.Equal(BrokerErrorCode.ProducerFenced, Assert.Throws<BrokerException>(() => broker.InitProducer(Id, old)).Code);
        var after = new RecordingSink();
        PublishIdempotent(broker, after, Id, 3, "t", "old3", 1, epoch: old);
        Assert.Equal(BrokerErrorCode.ProducerFenced, (await after.WaitForAsync(1))[0].Error);
        Assert.Equal((3UL, current), broker.InitProducer(Id, current)); // the new one resumes
        PublishIdempotent(broker, after, Id, 3, "t", "new3", 2, epoch: current);
        PublishIdempotent(broker, after, Id, 3, "t", "new3", 3, epoch: current); // its retry
        var outcomes = await after.WaitForAsync(3);
        Assert.Equal((3L, false, BrokerErrorCode.None), Outcome(outcomes, 2));
        Assert.Equal((3L, true, BrokerErrorCode.None), Outcome(outcomes, 3));
        Assert.Equal(4, Head(broker, "t"));
    }

    [Fact]
    public void The_restart_rescan_keeps_the_newest_epochs_window_whatever_the_topic_order()
    {
        var a = new TopicState("a", TopicOptions.Default with { Persistent = false }, "a", null, new TransientLog(16));
        var b = new TopicState("b", TopicOptions.Default with { Persistent = false }, "b", null, new TransientLog(16));
        foreach (var newerFirst in new[] { true, false })
        {
            var registry = new ProducerRegistry(1 << 16);
            void Old()
            {
                for (var s = 0UL; s < 10; s++)
                {
                    registry.Record(Id, s, a, (long)s, 0, epoch: 100);
                }
            }

            void New() => registry.Record(Id, 10, b, 0, 0, epoch: 200);
            if (newerFirst)
            {
                New();
                Old();
            }
            else
            {
                Old();
                New();
            }

            Assert.Equal(11UL, registry.NextSequence(Id));
            Assert.Equal(ProducerRegistry.Verdict.Fenced, registry.Check(Id, 9, out _, out _, out _, epoch: 100));
            Assert.Equal(ProducerRegistry.Verdict.Duplicate, registry.Check(Id, 10, out var topic, out _, out _, epoch: 200));
            Assert.Same(b, topic);
            Assert.Equal(ProducerRegistry.Verdict.TooOld, registry.Check(Id, 9, out _, out _, out _, epoch: 200)); // not its own
            Assert.Equal(ProducerRegistry.Verdict.New, registry.Check(Id, 11, out _, out _, out _, epoch: 200));
        }
    }

    /// <summary>
    /// Epochs of ids without a window (here instances that never wrote) are kept for the epoch retention after the id's
    /// last use; once 1,024 are kept, those past it are dropped when a new id comes a quarter of the retention after the
    /// last prune, and not before.
    /// </summary>
    [Fact]
    public void Epochs_of_instances_that_never_wrote_are_dropped_once_past_the_retention_and_not_before()
    {
        var registry = new ProducerRegistry(1 << 16, idleMs: 1_000, expiryMs: 10_000, epochRetentionMs: 20_000);
        for (var id = 1UL; id <= 1_024; id++)
        {
            Assert.Equal((0UL, 5_000UL), registry.Init(id, 0, now: 5_000));
        }

        // The 1,025th finds 1,024 kept, past the expiry but none past the retention: all stay.
        registry.Init(2_000, 0, now: 24_999);
        Assert.Equal(5_000UL, registry.Fence(1));
        Assert.Null(registry.Init(1, 4_999, now: 24_999)); // still fenced

        // Past the retention, but within a quarter of it since that prune: not yet looked at.
        registry.Init(2_001, 0, now: 25_000);
        Assert.Equal(5_000UL, registry.Fence(1));

        // A quarter of the retention later: dropped when the next new id comes.
        registry.Init(2_002, 0, now: 29_999);
        Assert.Equal(0UL, registry.Fence(1));
        Assert.Equal(24_999UL, registry.Fence(2_000));
        Assert.Equal(29_999UL, registry.Fence(2_002));
    }

    /// <summary>
    /// The sweep forgets a producer's window after the expiry; its epoch stays (the id's last use: its newest write),
    /// fencing older ones, until the retention passed.
    /// </summary>
    [Fact]
    public void A_forgotten_producers_epoch_fences_until_the_retention_passed()
    {
        var registry = new ProducerRegistry(64, idleMs: 10, expiryMs: 100, epochRetentionMs: 1_000);
        var topic = new TopicState("t", TopicOptions.Default with { Persistent = false }, "t", null, new TransientLog(16));
        Assert.Equal((0UL, 500UL), registry.Init(Id, 0, now: 500));
        registry.Record(Id, 0, topic, 0, timestamp: 600, epoch: 500);
        registry.Sweep(700);
        Assert.Equal(0UL, registry.NextSequence(Id)); // forgotten
        Assert.Equal(500UL, registry.Fence(Id));
        Assert.Equal(ProducerRegistry.Verdict.Fenced, registry.Check(Id, 5, out _, out _, out _, epoch: 499, now: 1_599));
        Assert.Null(registry.Init(Id, 499, now: 1_599));
    }

    private static (long Offset, bool Duplicate, BrokerErrorCode Error) Outcome(List<ClaimPublishTests.Outcome> outcomes, ulong token)
    {
        var o = outcomes.Single(x => x.Token == token);
        return (o.Offset, o.Duplicate, o.Error);
    }
}
