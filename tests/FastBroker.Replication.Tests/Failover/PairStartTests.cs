using System.Collections.Concurrent;
using FastBroker.Testing;
using Xunit.Abstractions;

namespace FastBroker.ReplicationTests.Failover;

/// <summary>
/// The pair harnesses (<see cref="InProcessPair"/>, <see cref="PairHarness"/>) hand a test its pair only once the
/// primary counts the standby in its replication gate (<c>standby.confirming</c>): b follows a from the moment it has
/// read the WELCOME, but a counts it only after it has read b's STATE_DIGESTS and sent the state files, and a publish
/// meanwhile is confirmed as with no standby (degraded to local, or held), which a test asserting on standby-acked data
/// would trip over on a loaded machine.
/// </summary>
[Collection(nameof(FailoverCollection))]
public sealed class PairStartTests(ITestOutputHelper output)
{
    /// <summary>
    /// How long b is held after it has read the WELCOME, before its STATE_DIGESTS: a harness that returns before a counts
    /// b does so within it; one that waits for a returns after it. Not asserted on.
    /// </summary>
    private static readonly TimeSpan s_hold = TimeSpan.FromSeconds(3);

    [Fact]
    public async Task An_in_process_pair_is_returned_only_once_the_primary_counts_its_standby()
    {
        using var dir = new TempDirectory();
        var lines = new ConcurrentQueue<string>();
        using var welcomed = new ManualResetEventSlim();
        using var release = new ManualResetEventSlim();
        var held = 0;
        var (a, b) = await InProcessPair.StartAsync(dir, BrokerOptions.Default, o => o with
        {
            HeartbeatTimeout = TimeSpan.FromSeconds(30), // b's link outlasts the hold
            Log = line =>
            {
                lines.Enqueue($"{o.NodeId}: {line}");

                // b's link thread, right after it has read a's WELCOME (b follows a from here): a waits for b's
                // STATE_DIGESTS, and does not count b until it has them.
                if (o.NodeId == "b" && line.StartsWith("replication: following primary", StringComparison.Ordinal) && Interlocked.Exchange(ref held, 1) == 0)
                {
                    welcomed.Set();
                    release.Wait(s_hold);
                }
            },
        });
        await using (a)
        await using (b)
        {
            var returned = NodeStatus.Parse(a.GetStatusJson());
            release.Set();
            output.WriteLine(string.Join('\n', lines));
            Assert.True(returned.StandbyConfirming, $"a's status as InProcessPair.StartAsync returned (b held after the WELCOME, a waiting for its STATE_DIGESTS): {returned.Json}");
            Assert.True(welcomed.IsSet, $"b was welcomed before the pair was returned: {returned.Json}");
        }
    }

    [Fact]
    public async Task A_process_pair_is_returned_with_the_primarys_status_counting_its_standby()
    {
        await using var pair = new PairHarness();
        try
        {
            var (_, _, primary) = await pair.StartConfiguredPairAsync([], []);
            Assert.True(primary.StandbyConfirming, $"a's status as StartConfiguredPairAsync returned: {primary.Json}");
        }
        catch
        {
            output.WriteLine(pair.Logs);
            throw;
        }
    }
}
