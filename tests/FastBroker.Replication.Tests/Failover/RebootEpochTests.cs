using Xunit.Abstractions;

namespace FastBroker.ReplicationTests.Failover;

/// <summary>
/// With a witness, a primary whose host restarted takes over alone (its peer is down and it does not wait:
/// <c>--peer-wait-ms 0</c>) and begins a new epoch at its heads. That epoch must come from the witness: were the
/// witness still to record the old one, it would grant the same number to the other node later, and the two histories
/// would carry one epoch under two leaders (which the pair cannot settle without an operator).
/// </summary>
[Collection(nameof(PairProcessCollection))]
public sealed class RebootEpochTests(ITestOutputHelper output)
{
    private const string Topic = "reboot.orders";
    private const int Confirmed = 20;
    private const int OnPrimaryDisk = 12;

    /// <summary>See DoublePowerLossTests: a 2 s heartbeat timeout, so a stalled machine does not change roles.</summary>
    private static readonly string[] s_options = ["--heartbeat-timeout-ms", "2000", "--peer-wait-ms", "0"];

    [Fact]
    public async Task The_epoch_a_rebooted_primary_begins_is_never_granted_to_the_other_node()
    {
        await using var pair = new PairHarness();
        try
        {
            var (a, b, before) = await pair.StartWitnessedPairAsync(s_options);
            await PrefixedMessages.PublishAsync(a, Topic, "d", Confirmed, FastBroker.Protocol.Durability.StandbyDurable);

            // Power loss on both; a's host restarts (a new boot id) and comes back alone.
            b.Kill();
            a.Kill();
            PowerLoss.LosePageCache(a, Topic, OnPrimaryDisk);
            await a.StartAsync();
            var rebooted = await a.WaitForAsync(s => s.IsPrimary, "a takes over alone after its reboot");
            Assert.True(rebooted.Epoch > before.Epoch, $"a begins a new epoch after its reboot: {rebooted.Epoch} after {before.Epoch}");

            // a dies before b returns: b, which never saw a's new epoch, takes the lease from the witness.
            a.Kill();
            await b.StartAsync();
            var taken = await b.WaitForAsync(s => s.IsPrimary, "b takes the lease once a's has run out");
            Assert.True(
                taken.Epoch > rebooted.Epoch,
                $"the witness granted b epoch {taken.Epoch}, which is not past epoch {rebooted.Epoch} that a began after its reboot: the two histories carry that number under two leaders");

            // a returns and follows b: one history, nothing for an operator to settle.
            await a.StartAsync();
            await a.WaitForAsync(
                s => s.IsStandby && s.Epoch == taken.Epoch && s.Replica is { Connected: true, PrimaryId: "b" } && s.ReplicaOf(Topic) is { Durable: Confirmed },
                "a follows b and copies the records its disk lost");
        }
        catch
        {
            output.WriteLine(pair.Logs);
            throw;
        }
    }
}
