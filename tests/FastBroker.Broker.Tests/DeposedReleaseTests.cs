using System.Buffers;
using FastBroker.Engine;
using FastBroker.Testing;

namespace FastBroker.BrokerTests;

/// <summary>
/// A primary of a pair whose authority (witness lease, no newer epoch) ends while a confirmation waits: for a group
/// commit (an fsynced topic), for the standby's ACK (a standby mode, a DUPLICATE of a message still held included), for
/// degrading to local, for the standby to apply a commit. The journaler reads the authority before each batch; a
/// confirmation released after such a wait must be checked again when it is released, or a deposed primary confirms what
/// the new primary may not hold. Each test's authority holds for its first reads (the batch's check, a commit's) and
/// then runs out, as a lease does during a long fsync or while the node is frozen: the release finds it gone and
/// withholds the confirmation (the node fences itself, <see cref="ReplicationGate.Deposed"/>); the step-down's
/// <see cref="ReplicationGate.FailAll"/> then fails it with NotPrimary.
/// </summary>
public class DeposedReleaseTests
{
    private const string SteppingDown = "not confirmed: stepping down";

    [Fact]
    public async Task An_fsynced_confirmation_whose_lease_ran_out_during_the_group_commit_is_withheld()
    {
        using var dir = new TempDirectory("fastbroker-deposed");
        var gate = new ReplicationGate(TimeSpan.FromMinutes(10), degradeToLocal: false);
        var deposed = 0;
        gate.Deposed = () => Interlocked.Increment(ref deposed);
        var broker = Broker.Open(BrokerFixture.Options(dir.Path) with { DefaultTopicOptions = TopicOptions.Default with { Durability = Durability.Fsynced, SegmentBytes = 4L << 20 } }, gate);
        try
        {
            await broker.PublishAsync("orders", "a"u8.ToArray()); // confirmed while the lease holds
            var lease = new Lease(validReads: 1); // the batch's check, then it runs out
            gate.Authority = lease.IsValid;
            var publish = broker.PublishAsync("orders", "b"u8.ToArray()).AsTask();
            Assert.True(broker.Topics.TryGet("orders", out var topic));
            await Eventually.TrueAsync(() => topic.Journal!.DurableOffset >= 2 && (publish.IsCompleted || Volatile.Read(ref deposed) == 1), "the group commit covers offset 1, and the publish is confirmed or the node told it is deposed");
            Assert.False(publish.IsCompleted, "confirmed by a node whose lease ran out while the group commit ran");
            Assert.Equal(1, Volatile.Read(ref deposed));

            gate.FailAll(BrokerErrorCode.NotPrimary, SteppingDown);
            var failed = await Assert.ThrowsAsync<BrokerException>(() => publish.WaitAsync(TimeSpan.FromSeconds(20)));
            Assert.Equal((BrokerErrorCode.NotPrimary, SteppingDown), (failed.Code, failed.Message));
        }
        finally
        {
            await broker.DisposeAsync();
        }
    }

    /// <summary>A confirmation still waiting for the group commit when the stepping-down node closes its broker is not confirmed by the close either.</summary>
    [Fact]
    public async Task A_broker_closed_after_the_lease_ran_out_confirms_no_fsynced_publish_it_flushes_at_the_close()
    {
        using var dir = new TempDirectory("fastbroker-deposed");
        var gate = new ReplicationGate(TimeSpan.FromMinutes(10), degradeToLocal: false);
        var broker = Broker.Open(BrokerFixture.Options(dir.Path) with { DefaultTopicOptions = TopicOptions.Default with { Durability = Durability.Fsynced, SegmentBytes = 4L << 20 } }, gate);
        try
        {
            await broker.PublishAsync("orders", "a"u8.ToArray());
            var lease = new Lease(validReads: 1);
            gate.Authority = lease.IsValid;
            gate.FailAll(BrokerErrorCode.NotPrimary, SteppingDown);
            var publish = broker.PublishAsync("orders", "b"u8.ToArray()).AsTask();
            await broker.DisposeAsync();
            var failed = await Assert.ThrowsAsync<BrokerException>(() => publish.WaitAsync(TimeSpan.FromSeconds(20)));
            Assert.Equal(BrokerErrorCode.NotPrimary, failed.Code);
        }
        finally
        {
            await broker.DisposeAsync();
        }
    }

    [Theory]
    [InlineData(AckMode.StandbyReceived)]
    [InlineData(AckMode.StandbyDurable)]
    public async Task A_standby_ack_that_arrives_after_the_lease_ran_out_releases_no_confirmation_nor_duplicate(AckMode acks)
    {
        using var dir = new TempDirectory("fastbroker-deposed");
        var gate = new ReplicationGate(TimeSpan.FromMinutes(10), degradeToLocal: false);
        var deposed = 0;
        gate.Deposed = () => Interlocked.Increment(ref deposed);
        var broker = Broker.Open(BrokerFixture.Options(dir.Path) with { DefaultTopicOptions = TopicOptions.Default with { Acks = acks, SegmentBytes = 4L << 20 } }, gate);
        try
        {
            gate.SetStandbyAttached(true);
            var lease = new Lease(validReads: 2); // the two batches' checks: the original's, then its retry's
            gate.Authority = lease.IsValid;
            var sink = new ClaimPublishTests.RecordingSink();
            Publish(broker, sink, token: 1); // held for the standby
            Assert.True(broker.Topics.TryGet("orders", out var topic));
            await Eventually.TrueAsync(() => topic.Replica?.Pending == 1, "the publish held for the standby");
            Publish(broker, sink, token: 2); // the producer's retry: a DUPLICATE, held until the standby holds offset 0
            await Eventually.TrueAsync(() => topic.Replica?.Pending == 2, "the duplicate held for the standby");

            var batch = new ConfirmBatch();
            gate.OnStandbyAck(topic, receivedNext: 1, durableNext: 1, batch);
            batch.End();
            Assert.Equal(1, Volatile.Read(ref deposed));
            Assert.Equal(0, topic.Replica!.Pending);

            gate.FailAll(BrokerErrorCode.NotPrimary, SteppingDown);
            var outcomes = await sink.WaitForAsync(2);
            Assert.All(outcomes, o => Assert.Equal((BrokerErrorCode.NotPrimary, SteppingDown), (o.Error, o.Reason)));
        }
        finally
        {
            await broker.DisposeAsync();
        }
    }

    [Theory]
    [InlineData(false)] // the standby leaves while degrading is allowed
    [InlineData(true)] // degrading is allowed (the witness recorded the standby behind) while none is attached
    public async Task Confirmations_held_for_a_standby_do_not_degrade_to_local_after_the_lease_ran_out(bool allowedLater)
    {
        using var dir = new TempDirectory("fastbroker-deposed");
        var gate = new ReplicationGate(TimeSpan.FromMinutes(10), degradeToLocal: true, degradeNeedsPermission: allowedLater);
        var broker = Broker.Open(BrokerFixture.Options(dir.Path) with { DefaultTopicOptions = TopicOptions.Default with { Acks = AckMode.StandbyDurable, SegmentBytes = 4L << 20 } }, gate);
        try
        {
            gate.SetStandbyAttached(!allowedLater);
            var lease = new Lease(validReads: 1);
            gate.Authority = lease.IsValid;
            var publish = broker.PublishAsync("orders", "a"u8.ToArray()).AsTask();
            Assert.True(broker.Topics.TryGet("orders", out var topic));
            await Eventually.TrueAsync(() => topic.Replica?.Pending == 1, "held for the standby");
            if (allowedLater)
            {
                gate.AllowDegrade();
            }
            else
            {
                gate.SetStandbyAttached(false);
            }

            Assert.False(publish.IsCompleted, "degraded to local by a node whose lease ran out");
            Assert.Equal(0, gate.Degraded);
            gate.FailAll(BrokerErrorCode.NotPrimary, SteppingDown);
            var failed = await Assert.ThrowsAsync<BrokerException>(() => publish.WaitAsync(TimeSpan.FromSeconds(20)));
            Assert.Equal(BrokerErrorCode.NotPrimary, failed.Code);
        }
        finally
        {
            await broker.DisposeAsync();
        }
    }

    [Theory]
    [InlineData(false)] // the standby applies it
    [InlineData(true)] // the standby leaves and the commit would degrade to local
    public async Task A_commit_waiting_for_the_standby_is_not_answered_after_the_lease_ran_out(bool degrade)
    {
        using var dir = new TempDirectory("fastbroker-deposed");
        var gate = new ReplicationGate(TimeSpan.FromMinutes(10), degradeToLocal: degrade);
        var broker = Broker.Open(BrokerFixture.Options(dir.Path) with { DefaultTopicOptions = TopicOptions.Default with { Acks = AckMode.StandbyDurable, SegmentBytes = 4L << 20 } }, gate);
        try
        {
            gate.SetStandbyAttached(true);
            var published = broker.PublishAsync("orders", "a"u8.ToArray()).AsTask();
            Assert.True(broker.Topics.TryGet("orders", out var topic));
            var batch = new ConfirmBatch();
            gate.OnStandbyAck(topic, 1, 1, batch);
            batch.End();
            await published.WaitAsync(TimeSpan.FromSeconds(10));

            using var sub = broker.Subscribe("orders", new SubscriptionOptions { DurableName = "auditor", Start = StartPosition.Earliest });
            var lease = new Lease(validReads: 1); // the commit's own check
            gate.Authority = lease.IsValid;
            var commit = sub.CommitAsync("orders", 1).AsTask();
            Assert.False(commit.IsCompleted);
            if (degrade)
            {
                gate.SetStandbyAttached(false);
            }
            else
            {
                gate.OnStateApplied(long.MaxValue);
            }

            // Answered before this, it would stay answered: the step-down fails only what is still unanswered.
            gate.FailAll(BrokerErrorCode.NotPrimary, SteppingDown);
            var failed = await Assert.ThrowsAsync<BrokerException>(() => commit.WaitAsync(TimeSpan.FromSeconds(20)));
            Assert.Equal(BrokerErrorCode.NotPrimary, failed.Code);
        }
        finally
        {
            await broker.DisposeAsync();
        }
    }

    private static void Publish(Broker broker, IPublishConfirmSink sink, ulong token)
    {
        Assert.True(broker.TryBeginPublish(1, out var claim));
        claim.Add("orders"u8, default, default, new ReadOnlySequence<byte>("m"u8.ToArray()), new PublishParameters(ProducerId: 7, ProducerSequence: 0), sink, token);
        claim.Commit();
    }

    /// <summary>A witness lease that is valid for its first <c>validReads</c> reads and has run out from then on.</summary>
    private sealed class Lease(int validReads)
    {
        private int _reads;

        public bool IsValid() => Interlocked.Increment(ref _reads) <= validReads;
    }
}
