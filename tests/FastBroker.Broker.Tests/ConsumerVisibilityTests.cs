using FastBroker.Engine;
using FastBroker.Testing;

namespace FastBroker.BrokerTests;

/// <summary>
/// A primary's consumer visibility, in process: with <see cref="ReplicationGate.ConsumerVisibility"/> a standby mode,
/// subscriptions and work-queue members are given a record only once the standby's acknowledged position (which the
/// test gives, as the ack reader would) passes it, and are woken when it does; without a standby they wait, or, with
/// degrade-to-local, read as on a single broker. (Real pairs: FastBroker.Replication.Tests, ConsumerVisibilityFailoverTests.)
/// </summary>
public class ConsumerVisibilityTests
{
    private static readonly TimeSpan s_deadline = TimeSpan.FromSeconds(60);

    [Theory]
    [InlineData(AckMode.StandbyReceived)]
    [InlineData(AckMode.StandbyDurable)]
    public async Task A_subscription_is_given_a_record_once_the_standby_holds_it_and_is_woken_then(AckMode visibility)
    {
        using var dir = new TempDirectory("fastbroker-visibility");
        var gate = new ReplicationGate(TimeSpan.FromMinutes(1), degradeToLocal: false, consumerVisibility: visibility);
        await using var broker = Open(dir.Path, gate);
        gate.SetStandbyAttached(true);
        using var sub = broker.Subscribe("orders", new SubscriptionOptions { Start = StartPosition.Earliest });
        Assert.True(broker.Topics.TryGet("orders", out var topic));

        // Confirmed as local: durable on the primary, so a subscription on a single broker would read it now.
        Assert.Equal(0, await broker.PublishAsync("orders", "a"u8.ToArray()).AsTask().WaitAsync(s_deadline));
        Assert.Equal(1, await broker.PublishAsync("orders", "b"u8.ToArray()).AsTask().WaitAsync(s_deadline));
        var c = new Collected();
        var r = new Recorder(c);
        Assert.Equal(0, sub.Fetch(10, ref r));

        // The records did not wake the subscription (the bound keeps them from it): only the standby's ack does.
        sub.Wait(TimeSpan.Zero); // the signal its creation left
        var woken = sub.WaitAsync().AsTask();
        Assert.False(woken.IsCompleted, "woken by records it cannot read yet");

        // The standby holds offset 0 only (received, not yet flushed: standby-durable still gives nothing).
        Ack(gate, topic, receivedNext: 1, durableNext: 0);
        if (visibility == AckMode.StandbyReceived)
        {
            await woken.WaitAsync(s_deadline);
            Assert.Equal(1, sub.Fetch(10, ref r));
            Assert.Equal([(0L, "a")], c.Items.Select(i => (i.Offset, i.Payload)));
            woken = sub.WaitAsync().AsTask();
        }
        else
        {
            Assert.Equal(0, sub.Fetch(10, ref r));
        }

        Ack(gate, topic, receivedNext: 2, durableNext: 2);
        await woken.WaitAsync(s_deadline);
        await Eventually.TrueAsync(() => sub.Fetch(10, ref r) >= 0 && c.Items.Count == 2, "both records given once the standby has flushed them", s_deadline);
        Assert.Equal([(0L, "a"), (1L, "b")], c.Items.Select(i => (i.Offset, i.Payload)));
    }

    [Fact]
    public async Task A_work_queue_member_is_handed_a_job_once_the_standby_holds_it()
    {
        using var dir = new TempDirectory("fastbroker-visibility");
        var gate = new ReplicationGate(TimeSpan.FromMinutes(1), degradeToLocal: false, consumerVisibility: AckMode.StandbyReceived);
        await using var broker = Open(dir.Path, gate);
        gate.SetStandbyAttached(true);
        using var member = broker.JoinGroup("jobs", "workers", new GroupOptions { Start = StartPosition.Earliest }, prefetch: 8);
        Assert.True(broker.Topics.TryGet("jobs", out var topic));

        Assert.Equal(0, await broker.PublishAsync("jobs", "j0"u8.ToArray()).AsTask().WaitAsync(s_deadline));
        member.RuntimeGroup.Pump(); // what the feed loop does when woken: the record is durable, but not the standby's
        var c = new Collected();
        var r = new Recorder(c);
        Assert.Equal(0, member.Fetch(10, ref r));
        Assert.Equal(0, member.RuntimeGroup.Snapshot().InFlight);

        Ack(gate, topic, receivedNext: 1, durableNext: 0); // wakes the group's feed loop
        await Eventually.TrueAsync(() => member.Fetch(10, ref r) >= 0 && c.Items.Count == 1, "the job handed out once the standby holds it", s_deadline);
        Assert.Equal("j0", c.Items[0].Payload);
    }

    [Fact]
    public async Task Without_a_standby_consumers_wait_and_a_returning_standby_releases_them()
    {
        using var dir = new TempDirectory("fastbroker-visibility");
        var gate = new ReplicationGate(TimeSpan.FromMinutes(1), degradeToLocal: false, consumerVisibility: AckMode.StandbyReceived);
        await using var broker = Open(dir.Path, gate);
        using var sub = broker.Subscribe("orders", new SubscriptionOptions { Start = StartPosition.Earliest });
        Assert.True(broker.Topics.TryGet("orders", out var topic));
        Assert.Equal(0, await broker.PublishAsync("orders", "a"u8.ToArray()).AsTask().WaitAsync(s_deadline));
        var c = new Collected();
        var r = new Recorder(c);
        Assert.Equal(0, sub.Fetch(10, ref r));

        // A standby attaches holding offset 0 already (its hello's position): given at once.
        var woken = sub.WaitAsync().AsTask();
        topic.Replica!.ResetPositions(1, 1);
        gate.SetStandbyAttached(true);
        await woken.WaitAsync(s_deadline);
        Assert.Equal(1, sub.Fetch(10, ref r));

        // It leaves: no degrading, so what it does not hold stays with the primary.
        gate.SetStandbyAttached(false);
        Assert.Equal(1, await broker.PublishAsync("orders", "b"u8.ToArray()).AsTask().WaitAsync(s_deadline));
        Assert.Equal(0, sub.Fetch(10, ref r));
    }

    [Fact]
    public async Task With_degrade_to_local_visibility_degrades_while_no_standby_is_attached_and_follows_the_next_one()
    {
        using var dir = new TempDirectory("fastbroker-visibility");
        var gate = new ReplicationGate(TimeSpan.FromMinutes(1), degradeToLocal: true, consumerVisibility: AckMode.StandbyReceived);
        await using var broker = Open(dir.Path, gate);
        using var sub = broker.Subscribe("orders", new SubscriptionOptions { Start = StartPosition.Earliest });
        Assert.True(broker.Topics.TryGet("orders", out var topic));
        var c = new Collected();
        var r = new Recorder(c);

        Assert.Equal(0, await broker.PublishAsync("orders", "a"u8.ToArray()).AsTask().WaitAsync(s_deadline));
        await Eventually.TrueAsync(() => sub.Fetch(10, ref r) >= 0 && c.Items.Count == 1, "degraded: given as on a single broker", s_deadline);

        // A standby attaches holding nothing past offset 1: the next record waits for it again.
        topic.Replica!.ResetPositions(1, 1);
        gate.SetStandbyAttached(true);
        Assert.Equal(1, await broker.PublishAsync("orders", "b"u8.ToArray()).AsTask().WaitAsync(s_deadline));
        Assert.Equal(0, sub.Fetch(10, ref r));

        // It leaves before it has it: degraded again, and the waiting reader is woken.
        var woken = sub.WaitAsync().AsTask();
        gate.SetStandbyAttached(false);
        await woken.WaitAsync(s_deadline);
        Assert.Equal(1, sub.Fetch(10, ref r));
    }

    [Fact]
    public async Task With_a_witness_visibility_degrades_only_once_degrading_is_allowed()
    {
        // A witnessed pair degrades once the witness records the standby behind (AllowDegrade), not before: until then
        // its consumers wait, as its standby-mode confirmations do.
        using var dir = new TempDirectory("fastbroker-visibility");
        var gate = new ReplicationGate(TimeSpan.FromMinutes(1), degradeToLocal: true, degradeNeedsPermission: true, consumerVisibility: AckMode.StandbyDurable);
        await using var broker = Open(dir.Path, gate);
        using var sub = broker.Subscribe("orders", new SubscriptionOptions { Start = StartPosition.Earliest });
        Assert.True(broker.Topics.TryGet("orders", out var topic));
        Assert.Equal(0, await broker.PublishAsync("orders", "a"u8.ToArray()).AsTask().WaitAsync(s_deadline));
        var c = new Collected();
        var r = new Recorder(c);
        Assert.Equal(0, sub.Fetch(10, ref r));

        sub.Wait(TimeSpan.Zero);
        var woken = sub.WaitAsync().AsTask();
        gate.AllowDegrade();
        await woken.WaitAsync(s_deadline);
        Assert.Equal(1, sub.Fetch(10, ref r));

        // Withdrawn (the standby back and in sync): gated again at what it has flushed.
        topic.Replica!.ResetPositions(1, 1);
        gate.SetStandbyAttached(true);
        Assert.True(gate.TryRevokeDegrade(gate.Degraded));
        Assert.Equal(1, topic.VisibleEnd);
    }

    [Fact]
    public async Task Local_visibility_gives_what_is_durable_on_the_primary_as_before()
    {
        using var dir = new TempDirectory("fastbroker-visibility");
        var gate = new ReplicationGate(TimeSpan.FromMinutes(1), degradeToLocal: false);
        await using var broker = Open(dir.Path, gate);
        gate.SetStandbyAttached(true);
        using var sub = broker.Subscribe("orders", new SubscriptionOptions { Start = StartPosition.Earliest });
        Assert.True(broker.Topics.TryGet("orders", out var topic));
        Assert.Equal(0, await broker.PublishAsync("orders", "a"u8.ToArray()).AsTask().WaitAsync(s_deadline));
        Assert.Equal(long.MaxValue, topic.VisibleEnd);
        var c = new Collected();
        var r = new Recorder(c);
        await Eventually.TrueAsync(() => sub.Fetch(10, ref r) >= 0 && c.Items.Count == 1, "given without the standby's ack", s_deadline);
    }

    private static Broker Open(string directory, ReplicationGate gate) =>
        Broker.Open(BrokerFixture.Options(directory) with { DefaultTopicOptions = TopicOptions.Default with { SegmentBytes = 4L << 20 } }, gate);

    private static void Ack(ReplicationGate gate, TopicState topic, long receivedNext, long durableNext)
    {
        var batch = new ConfirmBatch();
        gate.OnStandbyAck(topic, receivedNext, durableNext, batch);
        batch.End();
    }
}
