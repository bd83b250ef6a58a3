using FastBroker.Engine;
using FastBroker.Testing;

namespace FastBroker.BrokerTests;

/// <summary>
/// The primary's ack-mode gate, in process: a standby-mode confirmation is held until the standby's acknowledged
/// position passes its offset, failed with NotReplicated after the timeout, or given as local when so configured.
/// (The real link to a standby process is tested in FastBroker.Replication.Tests.)
/// </summary>
public class ReplicationGateTests
{
    [Fact]
    public async Task Standby_received_confirmation_waits_for_the_standby_ack_and_no_longer()
    {
        using var dir = new TempDirectory("fastbroker-gate");
        var gate = new ReplicationGate(TimeSpan.FromMinutes(1), degradeToLocal: false);
        await using var broker = OpenAttached(dir.Path, gate, AckMode.StandbyReceived);

        var first = broker.PublishAsync("orders", "a"u8.ToArray()).AsTask();
        var second = broker.PublishAsync("orders", "b"u8.ToArray()).AsTask();
        Assert.True(broker.Topics.TryGet("orders", out var topic));
        await Eventually.TrueAsync(() => topic.Replica?.Pending == 2, "both confirmations held by the gate");
        Assert.False(first.IsCompleted);

        Ack(gate, topic, receivedNext: 1, durableNext: 0);
        Assert.Equal(0, await first.WaitAsync(TimeSpan.FromSeconds(10)));
        Assert.False(second.IsCompleted);

        Ack(gate, topic, receivedNext: 2, durableNext: 0);
        Assert.Equal(1, await second.WaitAsync(TimeSpan.FromSeconds(10)));
    }

    [Fact]
    public async Task Standby_durable_confirmation_is_not_released_by_a_received_ack()
    {
        using var dir = new TempDirectory("fastbroker-gate");
        var gate = new ReplicationGate(TimeSpan.FromMinutes(1), degradeToLocal: false);
        await using var broker = OpenAttached(dir.Path, gate, AckMode.StandbyDurable);

        var publish = broker.PublishAsync("orders", "a"u8.ToArray()).AsTask();
        Assert.True(broker.Topics.TryGet("orders", out var topic));
        await Eventually.TrueAsync(() => topic.Replica?.Pending == 1, "held by the gate");
        Ack(gate, topic, receivedNext: 1, durableNext: 0);
        Assert.Equal(1, topic.Replica!.Pending);
        Assert.False(publish.IsCompleted);

        Ack(gate, topic, receivedNext: 1, durableNext: 1);
        Assert.Equal(0, await publish.WaitAsync(TimeSpan.FromSeconds(10)));
    }

    [Fact]
    public async Task A_reattached_standby_gets_durable_credit_only_for_what_it_has_flushed()
    {
        using var dir = new TempDirectory("fastbroker-gate");
        var gate = new ReplicationGate(TimeSpan.FromMinutes(1), degradeToLocal: false);
        await using var broker = OpenAttached(dir.Path, gate, AckMode.StandbyDurable);
        var publish = broker.PublishAsync("orders", "a"u8.ToArray()).AsTask();
        Assert.True(broker.Topics.TryGet("orders", out var topic));
        await Eventually.TrueAsync(() => topic.Replica?.Pending == 1, "held by the gate");

        // The standby comes back holding offset 0 but having flushed nothing: its hello says next 1, durable 0.
        gate.For(topic).ResetPositions(next: 1, durable: 0);
        Ack(gate, topic, receivedNext: 1, durableNext: 0);
        Assert.Equal((1L, 0L), (gate.For(topic).ReceivedNext, gate.For(topic).DurableNext));
        Assert.False(publish.IsCompleted);

        Ack(gate, topic, receivedNext: 1, durableNext: 1);
        Assert.Equal(0, await publish.WaitAsync(TimeSpan.FromSeconds(10)));
    }

    [Fact]
    public async Task An_ack_that_arrives_before_the_dispatcher_holds_the_confirmation_releases_it_at_once()
    {
        using var dir = new TempDirectory("fastbroker-gate");
        var gate = new ReplicationGate(TimeSpan.FromMinutes(1), degradeToLocal: false);
        await using var broker = OpenAttached(dir.Path, gate, AckMode.StandbyReceived);
        broker.CreateTopic("orders", TopicOptions.Default with { Acks = AckMode.StandbyReceived, SegmentBytes = 4L << 20 });
        Assert.True(broker.Topics.TryGet("orders", out var topic));

        Ack(gate, topic, receivedNext: 5, durableNext: 5);
        Assert.Equal(0, await broker.PublishAsync("orders", "a"u8.ToArray()).AsTask().WaitAsync(TimeSpan.FromSeconds(10)));
    }

    [Fact]
    public async Task A_primary_checks_ack_timeouts_at_a_fiftieth_of_the_timeout_until_a_group_needs_the_fine_tick()
    {
        Assert.Equal(TimeSpan.FromMilliseconds(50), Broker.StandbyTimerPeriod(TimeSpan.FromMilliseconds(5), TimeSpan.FromSeconds(5)));
        Assert.Equal(TimeSpan.FromMilliseconds(10), Broker.StandbyTimerPeriod(TimeSpan.FromMilliseconds(5), TimeSpan.FromMilliseconds(500)));
        Assert.Equal(TimeSpan.FromMilliseconds(5), Broker.StandbyTimerPeriod(TimeSpan.FromMilliseconds(5), TimeSpan.FromMilliseconds(50)));
        Assert.Equal(TimeSpan.FromMilliseconds(80), Broker.StandbyTimerPeriod(TimeSpan.FromMilliseconds(80), TimeSpan.FromSeconds(5)));

        using var dir = new TempDirectory("fastbroker-gate");
        var gate = new ReplicationGate(TimeSpan.FromSeconds(5), degradeToLocal: false);
        await using var broker = Broker.Open(BrokerFixture.Options(dir.Path) with { TimerResolution = TimeSpan.FromMilliseconds(5) }, gate);
        Assert.Equal(TimeSpan.FromMilliseconds(50), broker.TimerPeriod);

        // A work-queue group needs visibility timeouts at the broker's resolution: the timer ticks faster from then on.
        using var member = broker.JoinGroup("jobs", "workers");
        Assert.Equal(TimeSpan.FromMilliseconds(5), broker.TimerPeriod);
    }

    [Fact]
    public async Task Without_standby_ack_the_publish_fails_with_NotReplicated_after_the_timeout()
    {
        using var dir = new TempDirectory("fastbroker-gate");
        var gate = new ReplicationGate(TimeSpan.FromMilliseconds(50), degradeToLocal: false);
        await using var broker = Broker.Open(BrokerFixture.Options(dir.Path) with { DefaultTopicOptions = TopicOptions.Default with { Acks = AckMode.StandbyDurable, SegmentBytes = 4L << 20 } }, gate);

        var ex = await Assert.ThrowsAsync<BrokerException>(() => broker.PublishAsync("orders", "a"u8.ToArray()).AsTask().WaitAsync(TimeSpan.FromSeconds(20)));
        Assert.Equal(BrokerErrorCode.NotReplicated, ex.Code);
        Assert.Contains("standby-durable", ex.Message, StringComparison.Ordinal);
        Assert.Equal(1, gate.TimedOut);

        // It was written locally all the same (the client is told it is not replicated, not that it is absent).
        Assert.True(broker.Topics.TryGet("orders", out var topic));
        Assert.Equal(1, topic.Head);
    }

    [Fact]
    public async Task Degrade_to_local_confirms_at_once_while_no_standby_is_attached_and_counts_it()
    {
        using var dir = new TempDirectory("fastbroker-gate");
        var gate = new ReplicationGate(TimeSpan.FromMinutes(1), degradeToLocal: true);
        await using var broker = Broker.Open(BrokerFixture.Options(dir.Path) with { DefaultTopicOptions = TopicOptions.Default with { Acks = AckMode.StandbyReceived, SegmentBytes = 4L << 20 } }, gate);

        Assert.Equal(0, await broker.PublishAsync("orders", "a"u8.ToArray()).AsTask().WaitAsync(TimeSpan.FromSeconds(10)));
        Assert.Equal(1, gate.Degraded);

        // With a standby attached the same publish waits for it; losing the standby releases it as local.
        gate.SetStandbyAttached(true);
        var held = broker.PublishAsync("orders", "b"u8.ToArray()).AsTask();
        Assert.True(broker.Topics.TryGet("orders", out var topic));
        await Eventually.TrueAsync(() => topic.Replica?.Pending == 1, "held while the standby is attached");
        gate.SetStandbyAttached(false);
        Assert.Equal(1, await held.WaitAsync(TimeSpan.FromSeconds(10)));
        Assert.Equal(2, gate.Degraded);
    }

    [Fact]
    public async Task Degrading_that_needs_permission_holds_confirmations_asks_once_per_wait_and_releases_them_when_allowed()
    {
        using var dir = new TempDirectory("fastbroker-gate");
        var gate = new ReplicationGate(TimeSpan.FromMinutes(1), degradeToLocal: true, degradeNeedsPermission: true);
        var asked = 0;
        gate.DegradeWanted = () => Interlocked.Increment(ref asked);
        await using var broker = Broker.Open(BrokerFixture.Options(dir.Path) with { DefaultTopicOptions = TopicOptions.Default with { Acks = AckMode.StandbyDurable, SegmentBytes = 4L << 20 } }, gate);

        var held = broker.PublishAsync("orders", "a"u8.ToArray()).AsTask();
        Assert.True(broker.Topics.TryGet("orders", out var topic));
        await Eventually.TrueAsync(() => topic.Replica?.Pending == 1, "held: no standby, and no permission to degrade yet");
        Assert.True(Volatile.Read(ref asked) > 0);
        Assert.False(held.IsCompleted);
        Assert.Equal(0, gate.Degraded);

        gate.AllowDegrade();
        Assert.Equal(0, await held.WaitAsync(TimeSpan.FromSeconds(10)));
        Assert.Equal(1, gate.Degraded);
        Assert.Equal(1, await broker.PublishAsync("orders", "b"u8.ToArray()).AsTask().WaitAsync(TimeSpan.FromSeconds(10)));
        Assert.Equal(2, gate.Degraded);

        // Withdrawn only if nothing degraded since the count was read; then publishes wait again.
        Assert.False(gate.TryRevokeDegrade(degradedSeen: 1));
        Assert.True(gate.DegradeAllowed);
        Assert.True(gate.TryRevokeDegrade(degradedSeen: 2));
        Assert.False(gate.DegradeAllowed);
        var again = broker.PublishAsync("orders", "c"u8.ToArray()).AsTask();
        await Eventually.TrueAsync(() => topic.Replica?.Pending == 1, "held again once the permission is withdrawn");
        Assert.Equal(2, gate.Degraded);
        gate.SetStandbyAttached(true);
        Ack(gate, topic, receivedNext: 3, durableNext: 3);
        Assert.Equal(2, await again.WaitAsync(TimeSpan.FromSeconds(10)));
    }

    [Fact]
    public async Task A_single_broker_refuses_standby_modes_and_confirms_topic_default_as_local()
    {
        await using var f = await BrokerFixture.StartAsync(o => o with { DefaultTopicOptions = o.DefaultTopicOptions with { Acks = AckMode.StandbyDurable } });
        Assert.Equal(0, await f.Broker.PublishAsync("orders", "a"u8.ToArray()).AsTask().WaitAsync(TimeSpan.FromSeconds(10)));

        var sink = new ClaimPublishTests.RecordingSink();
        Assert.True(f.Broker.TryBeginPublish(1, out var claim));
        claim.Add("orders"u8, default, default, new System.Buffers.ReadOnlySequence<byte>("b"u8.ToArray()), new PublishParameters(Durability: PublishDurability.StandbyReceived), sink, 7);
        claim.Commit();
        var outcome = Assert.Single(await sink.WaitForAsync(1));
        Assert.Equal(BrokerErrorCode.InvalidArgument, outcome.Error);
    }

    [Fact]
    public async Task A_commit_in_a_standby_mode_is_answered_once_the_standby_applied_its_version()
    {
        using var dir = new TempDirectory("fastbroker-gate");
        var gate = new ReplicationGate(TimeSpan.FromMinutes(1), degradeToLocal: false);
        await using var broker = await OpenWithOneReplicatedMessageAsync(dir.Path, gate, AckMode.StandbyDurable);
        using var sub = broker.Subscribe("orders", new SubscriptionOptions { DurableName = "auditor", Start = StartPosition.Earliest });
        var commit = sub.CommitAsync("orders", 1).AsTask();
        Assert.Equal(1, sub.CommittedOffset("orders")); // stored here at once

        // The update is queued for the replicator, in version order; the answer waits for the standby's apply.
        var updates = new List<PositionUpdate>();
        gate.DrainPositionUpdates(updates);
        var update = Assert.Single(updates);
        Assert.Equal(("auditor", "orders", 1L), (update.Subscription, update.Topic, update.NextOffset));
        Assert.False(commit.IsCompleted);
        gate.OnStateApplied(update.Version - 1);
        Assert.False(commit.IsCompleted);
        gate.OnStateApplied(update.Version);
        await commit.WaitAsync(TimeSpan.FromSeconds(10));

        // Every commit is a new version (even one that moves back): it waits until applied, here via a snapshot.
        var next = sub.CommitAsync("orders", 0).AsTask();
        Assert.False(next.IsCompleted);
        Assert.Equal(update.Version + 1, gate.BeginStateSnapshot()); // a new standby's snapshot covers it
        gate.OnStateApplied(update.Version + 1);
        await next.WaitAsync(TimeSpan.FromSeconds(10));
    }

    [Fact]
    public async Task A_commit_the_standby_never_applies_fails_with_NotReplicated_but_stays_stored()
    {
        using var dir = new TempDirectory("fastbroker-gate");
        var gate = new ReplicationGate(TimeSpan.FromMilliseconds(50), degradeToLocal: false);
        await using var broker = await OpenWithOneReplicatedMessageAsync(dir.Path, gate, AckMode.StandbyReceived);
        using var sub = broker.Subscribe("orders", new SubscriptionOptions { DurableName = "auditor", Start = StartPosition.Earliest });
        var ex = await Assert.ThrowsAsync<BrokerException>(() => sub.CommitAsync("orders", 1).AsTask().WaitAsync(TimeSpan.FromSeconds(20)));
        Assert.Equal(BrokerErrorCode.NotReplicated, ex.Code);
        Assert.Equal(1, sub.CommittedOffset("orders"));
    }

    /// <summary>
    /// A commit stored (and queued for the standby) as the node steps down, whose wait for the standby begins after the
    /// step-down failed every wait the gate held: it fails at once with the step-down's error, not after the ack timeout
    /// as NotReplicated, nor never once the broker is closed (its timer checks no timeouts). The order is forced: the
    /// gate is failed from the commit itself, after the position is stored, before the wait begins.
    /// </summary>
    [Fact]
    public async Task A_commit_whose_wait_begins_after_the_gate_failed_everything_fails_at_once_with_that_error()
    {
        using var dir = new TempDirectory("fastbroker-gate");
        var gate = new ReplicationGate(TimeSpan.FromMinutes(10), degradeToLocal: false);
        var broker = await OpenWithOneReplicatedMessageAsync(dir.Path, gate, AckMode.StandbyDurable);
        try
        {
            using var sub = broker.Subscribe("orders", new SubscriptionOptions { DurableName = "auditor", Start = StartPosition.Earliest });
            var early = sub.CommitAsync("orders", 0).AsTask(); // held by the gate when it fails
            sub.CommitStored = (_, _) => gate.FailAll(BrokerErrorCode.NotPrimary, "not confirmed: stepping down");
            var late = sub.CommitAsync("orders", 1).AsTask();
            sub.CommitStored = null;
            var failed = await Assert.ThrowsAsync<BrokerException>(() => early.WaitAsync(TimeSpan.FromSeconds(20)));
            Assert.Equal(BrokerErrorCode.NotPrimary, failed.Code);

            // The stepping-down node closes its broker: nothing would check the late wait's timeout any more.
            await broker.DisposeAsync();
            failed = await Assert.ThrowsAsync<BrokerException>(() => late.WaitAsync(TimeSpan.FromSeconds(20)));
            Assert.Equal((BrokerErrorCode.NotPrimary, "not confirmed: stepping down"), (failed.Code, failed.Message));
        }
        finally
        {
            await broker.DisposeAsync();
        }
    }

    /// <summary>
    /// As above for a publish: a standby-mode confirmation the dispatcher hands the gate after it failed everything (the
    /// message was claimed before the step-down) fails at once with that error, in a topic known before and in one new.
    /// </summary>
    [Fact]
    public async Task A_confirmation_held_after_the_gate_failed_everything_fails_at_once_with_that_error()
    {
        using var dir = new TempDirectory("fastbroker-gate");
        var gate = new ReplicationGate(TimeSpan.FromMinutes(10), degradeToLocal: false);
        var broker = await OpenWithOneReplicatedMessageAsync(dir.Path, gate, AckMode.StandbyReceived);
        try
        {
            gate.FailAll(BrokerErrorCode.NotPrimary, "not confirmed: stepping down");
            var known = broker.PublishAsync("orders", "b"u8.ToArray()).AsTask();
            var fresh = broker.PublishAsync("fresh", "c"u8.ToArray()).AsTask();
            await broker.DisposeAsync();
            foreach (var publish in new[] { known, fresh })
            {
                var failed = await Assert.ThrowsAsync<BrokerException>(() => publish.WaitAsync(TimeSpan.FromSeconds(20)));
                Assert.Equal((BrokerErrorCode.NotPrimary, "not confirmed: stepping down"), (failed.Code, failed.Message));
            }
        }
        finally
        {
            await broker.DisposeAsync();
        }
    }

    [Fact]
    public async Task Commits_in_local_mode_or_degraded_do_not_wait()
    {
        using var dir = new TempDirectory("fastbroker-gate");
        var gate = new ReplicationGate(TimeSpan.FromMinutes(1), degradeToLocal: true);
        await using var broker = Broker.Open(BrokerFixture.Options(dir.Path) with { DefaultTopicOptions = TopicOptions.Default with { SegmentBytes = 4L << 20 } }, gate);
        broker.CreateTopic("audit", TopicOptions.Default with { Acks = AckMode.StandbyDurable, SegmentBytes = 4L << 20 });
        await broker.PublishAsync("orders", "a"u8.ToArray());
        await broker.PublishAsync("audit", "a"u8.ToArray());

        using var local = broker.Subscribe("orders", new SubscriptionOptions { DurableName = "l", Start = StartPosition.Earliest });
        gate.SetStandbyAttached(true);
        Assert.True(local.CommitAsync("orders", 1).IsCompletedSuccessfully); // topic acks local

        using var audit = broker.Subscribe("audit", new SubscriptionOptions { DurableName = "a", Start = StartPosition.Earliest });
        var held = audit.CommitAsync("audit", 1).AsTask();
        Assert.False(held.IsCompleted);
        gate.SetStandbyAttached(false); // degrade: released as local
        await held.WaitAsync(TimeSpan.FromSeconds(10));
        Assert.True(audit.CommitAsync("audit", 1).IsCompletedSuccessfully); // no standby: local at once
        Assert.Equal(3, gate.Degraded); // the audit publish, the released commit, the last commit
    }

    [Fact]
    public async Task A_standby_ack_hands_a_batch_sink_its_confirmations_then_one_batch_end_on_the_ack_thread()
    {
        using var dir = new TempDirectory("fastbroker-gate");
        var gate = new ReplicationGate(TimeSpan.FromMinutes(1), degradeToLocal: false);
        await using var broker = OpenAttached(dir.Path, gate, AckMode.StandbyReceived);
        var sink = new ClaimPublishTests.BatchSink();
        Assert.True(broker.TryBeginPublish(3, out var claim));
        for (var token = 1UL; token <= 3; token++)
        {
            claim.Add("orders"u8, default, default, new System.Buffers.ReadOnlySequence<byte>("m"u8.ToArray()), default, sink, token);
        }

        claim.Commit();
        Assert.True(broker.Topics.TryGet("orders", out var topic));
        await Eventually.TrueAsync(() => topic.Replica?.Pending == 3, "the confirmations held by the gate");
        Assert.Empty(sink.Events);

        // As the replicator's ack reader does: one ACK frame's confirmations, then the batch end, on its thread.
        var batch = new ConfirmBatch();
        gate.OnStandbyAck(topic, receivedNext: 2, durableNext: 0, batch);
        Assert.Equal(["batch 1", "batch 2"], sink.Events.Select(e => $"{e.Kind} {e.Token}"));
        batch.End();
        gate.OnStandbyAck(topic, receivedNext: 3, durableNext: 0, batch);
        batch.End();
        batch.End(); // nothing new: no second end
        Assert.Equal(["batch 1", "batch 2", "end 0", "batch 3", "end 0"], sink.Events.Select(e => $"{e.Kind} {e.Token}"));
        Assert.All(sink.Events, e => Assert.Equal(Environment.CurrentManagedThreadId, e.Thread));
    }

    private static void Ack(ReplicationGate gate, TopicState topic, long receivedNext, long durableNext)
    {
        var batch = new ConfirmBatch();
        gate.OnStandbyAck(topic, receivedNext, durableNext, batch);
        batch.End();
    }

    /// <summary>A primary's broker with <paramref name="gate"/>, a standby attached, and "orders" offset 0 published and acknowledged by it.</summary>
    private static async Task<Broker> OpenWithOneReplicatedMessageAsync(string directory, ReplicationGate gate, AckMode acks)
    {
        var broker = OpenAttached(directory, gate, acks);
        var published = broker.PublishAsync("orders", "a"u8.ToArray()).AsTask();
        Assert.True(broker.Topics.TryGet("orders", out var topic));
        Ack(gate, topic, 1, 1);
        await published.WaitAsync(TimeSpan.FromSeconds(10));
        return broker;
    }

    /// <summary>A primary's broker with <paramref name="gate"/> whose new topics acknowledge in <paramref name="acks"/>, a standby attached.</summary>
    private static Broker OpenAttached(string directory, ReplicationGate gate, AckMode acks)
    {
        var broker = Broker.Open(BrokerFixture.Options(directory) with { DefaultTopicOptions = TopicOptions.Default with { Acks = acks, SegmentBytes = 4L << 20 } }, gate);
        gate.SetStandbyAttached(true);
        return broker;
    }
}
