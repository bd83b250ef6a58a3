using Xunit.Abstractions;

namespace FastBroker.ReplicationTests.Failover;

/// <summary>
/// Both nodes lose power. The primary's journal was written through the page cache (a <c>Written</c> topic), so its
/// last records never reached its disk; the standby had flushed them (each was confirmed standby-durable). The node
/// holding more of the log must take over and the other must copy from it: the reverse (the old primary takes over
/// with its shorter journal) would cut confirmed records from the standby when it rejoins.
/// </summary>
[Collection(nameof(PairProcessCollection))]
public sealed class DoublePowerLossTests(ITestOutputHelper output)
{
    private const string Topic = "power.orders";
    private const int Confirmed = 20;
    private const int OnPrimaryDisk = 12;

    /// <summary>
    /// A 2 s heartbeat timeout on every node, not the default 500 ms: on a loaded machine a node the scheduler stalls for
    /// that long is taken for dead. With a witness a primary past its 1 s lease fences itself and the pair changes roles
    /// before the power loss or after the recovery the test checks; with or without one, a standby silent for 2 s is
    /// detached while its standby-durable publishes wait for it. The 4 s lease the killed primary held runs out within
    /// 4 s of the kill, well inside the 10 s a node defers to a peer ahead (--peer-wait-ms), so the node ahead still
    /// takes over by the rule under test, not because the deferral lapsed.
    /// </summary>
    private static readonly string[] s_heartbeat = ["--heartbeat-timeout-ms", "2000"];

    /// <param name="witness">With a witness (automatic promotion) or without (configured roles).</param>
    /// <param name="primaryFirst">
    /// The old primary's host comes back first (it waits for its peer, having seen its host restart) or last (it
    /// finds the peer deciding and defers to it).
    /// </param>
    [Theory]
    [InlineData(true, true)]
    [InlineData(false, false)]
    public async Task The_node_that_holds_more_of_the_log_takes_over_and_nothing_confirmed_is_lost(bool witness, bool primaryFirst)
    {
        await using var pair = new PairHarness();
        try
        {
            var (a, b, _) = witness ? await pair.StartWitnessedPairAsync(s_heartbeat) : await pair.StartConfiguredPairAsync(s_heartbeat, s_heartbeat);

            await PrefixedMessages.PublishAsync(a, Topic, "d", Confirmed, FastBroker.Protocol.Durability.StandbyDurable);

            // Power loss on both: the standby's journal holds all 20 on disk; the primary's disk only the first 12,
            // and its host restarts (a new boot id).
            b.Kill();
            a.Kill();
            PowerLoss.LosePageCache(a, Topic, OnPrimaryDisk);

            if (primaryFirst)
            {
                await a.StartAsync(); // it cannot reach b: it waits for it, having seen its host restart
                await b.StartAsync();
            }
            else
            {
                await b.StartAsync();
                await b.WaitForAsync(s => s.Role is "standby" or "primary", "b has decided");
                await a.StartAsync();
            }

            var primary = await b.WaitForAsync(s => s.IsPrimary, "b, which holds all the confirmed records, takes over");
            var follower = await a.WaitForAsync(
                s => s.IsStandby && s.Epoch == primary.Epoch && s.Replica is { Connected: true } && s.ReplicaOf(Topic) is { Durable: Confirmed },
                "a follows b and copies the records its disk lost");
            Assert.Empty(follower.Replica!.Truncations);
            if (primaryFirst)
            {
                // a started first: it either found b not yet up and waited for it (its host restarted), or found b up
                // already and deferred to it (b holds more of the log, or is primary by then); it never took over alone.
                Assert.Contains(follower.Events, e => e.Contains("host restarted", StringComparison.Ordinal)
                    || e.Contains("deferring to it", StringComparison.Ordinal) || e.Contains("is primary at epoch", StringComparison.Ordinal));
                Assert.DoesNotContain(follower.Events, e => e.Contains("': Primary (epoch", StringComparison.Ordinal));
            }

            output.WriteLine(string.Join('\n', follower.Events.Where(e => e.Contains("defer", StringComparison.Ordinal))));

            var onB = await TopicContent.ReadAsync(b.ClientEndpoint, Topic);
            Assert.Equal(Confirmed, onB.Head);
            onB.AssertRun(0, "d", Confirmed);
        }
        catch
        {
            output.WriteLine(pair.Logs);
            throw;
        }
    }

    /// <summary>
    /// Without a witness, the old primary comes back alone and does not wait (<c>--peer-wait-ms 0</c>): it takes over
    /// with its shorter journal, and clients write new records at the offsets it lost. It must begin a new epoch there,
    /// so that the standby, when it returns, cuts the records only it held (reported) instead of keeping them under
    /// the primary's different records at the same offsets.
    /// </summary>
    [Fact]
    public async Task A_primary_that_takes_over_alone_after_a_reboot_begins_a_new_epoch_and_the_standby_cuts_what_differs()
    {
        await using var pair = new PairHarness();
        try
        {
            var (a, b, before) = await pair.StartConfiguredPairAsync(["--peer-wait-ms", "0", .. s_heartbeat], s_heartbeat);
            await PrefixedMessages.PublishAsync(a, Topic, "d", Confirmed, FastBroker.Protocol.Durability.StandbyDurable);

            b.Kill();
            a.Kill();
            PowerLoss.LosePageCache(a, Topic, OnPrimaryDisk);
            await a.StartAsync();
            var after = await a.WaitForAsync(s => s.IsPrimary, "a takes over alone");
            Assert.True(after.Epoch > before.Epoch, $"a begins a new epoch after its reboot: {after.Epoch} after {before.Epoch}");
            const int New = 15;
            Assert.Equal(OnPrimaryDisk, await PrefixedMessages.PublishAsync(a, Topic, "n", New, FastBroker.Protocol.Durability.Written));

            await b.StartAsync();
            var follower = await b.WaitForAsync(
                s => s.IsStandby && s.Replica is { Connected: true } && s.ReplicaOf(Topic) is { Durable: OnPrimaryDisk + New },
                "b follows a and holds a's records");
            var cut = Assert.Single(follower.Replica!.Truncations, t => t.Contains($"'{Topic}'", StringComparison.Ordinal));
            Assert.Contains($"cut at offset {OnPrimaryDisk}", cut, StringComparison.Ordinal);

            // What b holds is a's log: a dies, b is promoted by hand and serves d0000…d0011, n0000….
            a.Kill();
            await b.WaitForAsync(s => s.Replica is { Connected: false }, "b sees a gone");
            var (status, body) = await b.PromoteAsync();
            Assert.True(status == 200, $"POST /promote on b: {status} {body}");
            await b.WaitForAsync(s => s.IsPrimary, "b is primary");
            var onB = await TopicContent.ReadAsync(b.ClientEndpoint, Topic);
            Assert.Equal(OnPrimaryDisk + New, onB.Head);
            onB.AssertRun(0, "d", OnPrimaryDisk);
            onB.AssertRun(OnPrimaryDisk, "n", New);
        }
        catch
        {
            output.WriteLine(pair.Logs);
            throw;
        }
    }
}
