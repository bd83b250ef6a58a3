using FastBroker.Engine;
using FastBroker.Testing;

namespace FastBroker.BrokerTests;

/// <summary>
/// INIT_PRODUCER on a deposed primary of a pair (its witness lease ran out, or a newer primary exists) that has not
/// stepped down yet: a new epoch given there is one the new primary never sees, so it fences nothing there, and the
/// producer publishes with it to the new primary as if it fenced its predecessor. Refused with NotPrimary, as a COMMIT
/// is: before anything is given when the node is deposed already, and after the epoch's write (its fsync) or the
/// standby's STATE_ACK when the lease ran out meanwhile.
/// </summary>
public class DeposedInitProducerTests
{
    private const ulong Producer = 0x51;

    [Fact]
    public async Task A_deposed_primary_refuses_INIT_PRODUCER_with_NotPrimary_and_gives_no_epoch()
    {
        using var dir = new TempDirectory("fastbroker-deposed-init");
        var gate = new ReplicationGate(TimeSpan.FromMinutes(10), degradeToLocal: false);
        await using var broker = Broker.Open(BrokerFixture.Options(dir.Path) with { DefaultTopicOptions = TopicOptions.Default with { SegmentBytes = 4L << 20 } }, gate);
        var (_, first) = await broker.InitProducerAsync(Producer);
        var authority = false;
        gate.Authority = () => Volatile.Read(ref authority);

        var refused = await Assert.ThrowsAsync<BrokerException>(async () => await broker.InitProducerAsync(Producer));
        Assert.Equal(BrokerErrorCode.NotPrimary, refused.Code);
        Assert.Contains("no longer the primary", refused.Message, StringComparison.Ordinal);
        refused = await Assert.ThrowsAsync<BrokerException>(async () => await broker.InitProducerAsync(Producer, first));
        Assert.Equal(BrokerErrorCode.NotPrimary, refused.Code);
        refused = Assert.Throws<BrokerException>(() => broker.NextProducerSequence(Producer)); // INIT_PRODUCER without an epoch
        Assert.Equal(BrokerErrorCode.NotPrimary, refused.Code);

        // Nothing was given: the first instance is not fenced (were the node primary again).
        Volatile.Write(ref authority, true);
        Assert.True(broker.TryBeginPublish(1, out var claim));
        var sink = new ClaimPublishTests.RecordingSink();
        claim.Add("orders"u8, default, default, new System.Buffers.ReadOnlySequence<byte>("m"u8.ToArray()), new PublishParameters(ProducerId: Producer, ProducerSequence: 0, ProducerEpoch: first), sink, 1);
        claim.Commit();
        var outcome = Assert.Single(await sink.WaitForAsync(1));
        Assert.Equal(BrokerErrorCode.None, outcome.Error);
    }

    [Fact]
    public async Task An_INIT_PRODUCER_whose_lease_runs_out_while_its_epoch_is_written_is_refused()
    {
        using var dir = new TempDirectory("fastbroker-deposed-init");
        var gate = new ReplicationGate(TimeSpan.FromMinutes(10), degradeToLocal: false);
        await using var broker = Broker.Open(BrokerFixture.Options(dir.Path) with { DefaultTopicOptions = TopicOptions.Default with { SegmentBytes = 4L << 20 } }, gate);
        var reads = 0;
        gate.Authority = () => Interlocked.Increment(ref reads) <= 1; // valid at the request, run out once producers.epochs is fsync'd
        var refused = await Assert.ThrowsAsync<BrokerException>(async () => await broker.InitProducerAsync(Producer));
        Assert.Equal(BrokerErrorCode.NotPrimary, refused.Code);
    }

    [Fact]
    public async Task An_INIT_PRODUCER_whose_lease_runs_out_before_the_standby_applied_its_epoch_is_not_answered()
    {
        using var dir = new TempDirectory("fastbroker-deposed-init");
        var gate = new ReplicationGate(TimeSpan.FromMinutes(10), degradeToLocal: false);
        await using var broker = Broker.Open(BrokerFixture.Options(dir.Path) with { DefaultTopicOptions = TopicOptions.Default with { Acks = AckMode.StandbyDurable, SegmentBytes = 4L << 20 } }, gate);
        gate.SetStandbyAttached(true);
        var reads = 0;
        gate.Authority = () => Interlocked.Increment(ref reads) <= 2; // valid at the request and after the write, then run out
        var init = broker.InitProducerAsync(Producer).AsTask();
        gate.OnStateApplied(long.MaxValue); // the standby holds it, but the lease ran out meanwhile
        gate.FailAll(BrokerErrorCode.NotPrimary, "not confirmed: stepping down");
        var refused = await Assert.ThrowsAsync<BrokerException>(() => init.WaitAsync(TimeSpan.FromSeconds(20)));
        Assert.Equal(BrokerErrorCode.NotPrimary, refused.Code);
    }
}
