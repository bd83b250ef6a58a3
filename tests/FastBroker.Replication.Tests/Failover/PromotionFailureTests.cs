using System.Collections.Concurrent;
using System.Net;
using FastBroker.Replication;
using FastBroker.Server;
using FastBroker.Testing;
using Xunit.Abstractions;

namespace FastBroker.ReplicationTests.Failover;

/// <summary>
/// A manual promotion whose epoch step fails in a way the standby does not expect is answered with that failure, and
/// the node stays a standby that can be promoted again. The standby had taken the request up, so nothing withdrew it,
/// and the exception escaped its loop: the supervisor tried again and again, and <c>PromoteAsync</c> (and
/// <c>POST /promote</c>) waited forever. The failure comes from the tests-only
/// <c>ReplicationOptions.PromotionEpochStep</c> hook, which throws until the test says otherwise: the cause this test
/// first used, a witness granting a lease of 2^63 - 1 ms (which the witness client threw for), is now an error answer,
/// and so a refused promotion (WitnessAnswerRangeTests). One in-process standby whose peer is down, and a stand-in
/// witness that denies the lease while it starts, then grants it.
/// </summary>
public sealed class PromotionFailureTests(ITestOutputHelper output)
{
    /// <summary>Far below a heartbeat interval (the supervisor's pause after a failure), far above a promotion.</summary>
    private static readonly TimeSpan s_deadline = TimeSpan.FromSeconds(20);

    [Fact]
    public async Task A_promotion_whose_epoch_step_fails_answers_the_failure_and_the_node_can_be_promoted_again()
    {
        using var dir = new TempDirectory();
        using var witness = new StandInWitness();
        var stepFails = true;
        var lines = new ConcurrentQueue<string>();
        var node = await ReplicatedNode.StartAsync(BrokerOptions.Default, ServerOptions.Default with { Port = 0 }, new ReplicationOptions
        {
            NodeId = "b",
            DataDirectory = dir.Combine("b"),
            Port = FreePort.Next(),
            Peer = Cli.Address(FreePort.Next()), // nothing listens there: the peer is down
            Witness = witness.Endpoint,
            InitialRole = NodeRole.Standby,
            HeartbeatInterval = TimeSpan.FromSeconds(60), // the supervisor's pause after a failure
            HeartbeatTimeout = TimeSpan.FromSeconds(120), // no lease request of its own meanwhile
            LeaseTtl = TimeSpan.FromSeconds(30),
            PromoteAnswerTimeout = TimeSpan.FromSeconds(15),
            PromotionEpochStep = () =>
            {
                if (Volatile.Read(ref stepFails))
                {
                    throw new InvalidOperationException("the test's stand-in for a failing epoch step");
                }
            },
            Log = lines.Enqueue,
        });
        await using (node)
        {
            var admin = await node.StartAdminAsync("127.0.0.1", 0);
            await using (admin)
            {
                Assert.True(await node.WaitForRoleAsync(NodeRole.Standby, TimeSpan.FromSeconds(30)), $"b becomes standby:\n{string.Join('\n', lines)}");
                witness.Answer = StandInWitness.Grant; // the step fails before the witness is asked

                var promotion = node.PromoteAsync();
                var first = await Task.WhenAny(promotion, Task.Delay(s_deadline));
                Assert.True(first == promotion, $"PromoteAsync did not complete within {s_deadline.TotalSeconds:0} s:\n{string.Join('\n', lines)}");
                var failure = await Assert.ThrowsAsync<InvalidOperationException>(() => promotion);
                output.WriteLine($"PromoteAsync: {failure.Message}");
                Assert.Contains("the promotion failed", failure.Message, StringComparison.Ordinal);
                Assert.Contains("the test's stand-in for a failing epoch step", failure.Message, StringComparison.Ordinal);
                Assert.Equal(NodeRole.Standby, node.Role);

                // Over HTTP: 409 with the reason, not 202 (under way) nor a request that never ends.
                using var http = new HttpClient { Timeout = s_deadline * 2 };
                using (var response = await http.PostAsync(new Uri($"http://{admin.EndPoint}/promote"), null))
                {
                    var body = await response.Content.ReadAsStringAsync();
                    output.WriteLine($"POST /promote: {(int)response.StatusCode} {body.Trim()}");
                    Assert.True(response.StatusCode == HttpStatusCode.Conflict && body.Contains("the promotion failed", StringComparison.Ordinal), $"POST /promote: {(int)response.StatusCode} {body}");
                }

                Assert.Equal(NodeRole.Standby, node.Role);

                // The step goes through, and the witness grants a lease it can use: promoted.
                Volatile.Write(ref stepFails, false);
                var epoch = await node.PromoteAsync().WaitAsync(s_deadline);
                Assert.Equal(StandInWitness.GrantedEpoch, epoch);
                Assert.Equal(NodeRole.Primary, node.Role);
                Assert.NotNull(node.Server);
            }
        }
    }
}
