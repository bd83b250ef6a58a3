using System.Collections.Concurrent;
using System.Net;
using System.Net.Sockets;
using FastBroker.Replication;
using FastBroker.Server;
using FastBroker.Testing;
using Xunit.Abstractions;

namespace FastBroker.ReplicationTests.Failover;

/// <summary>
/// <c>fastbroker promote</c> against a node that answers <c>POST /promote</c> with 202 (the standby took the promotion
/// up, it is not finished and goes ahead): the CLI prints the node's answer and how to check on it, and exits 75
/// (EX_TEMPFAIL), neither 0 (promoted) nor 1 (refused). It exited 1, as for a refusal. One in-process standby whose
/// peer is down and whose witness is a stand-in that accepts connections and never answers, so the promotion the
/// standby takes up waits on its lease request while <c>POST /promote</c> answers (after 1 s instead of 30 s).
/// </summary>
[Collection(nameof(FailoverCollection))]
public sealed class PromoteInProgressTests(ITestOutputHelper output)
{
    [Fact]
    public async Task Promote_answered_202_prints_the_answer_and_exits_75()
    {
        using var dir = new TempDirectory("fastbroker-cli-promote-202");
        using var witness = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        witness.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        witness.Listen(64); // never accepted: the kernel completes the connections, no answer ever comes

        var lines = new ConcurrentQueue<string>();
        var node = await ReplicatedNode.StartAsync(BrokerOptions.Default, ServerOptions.Default with { Port = 0 }, new ReplicationOptions
        {
            NodeId = "b",
            DataDirectory = dir.Combine("b"),
            Port = FreePort.Next(),
            Peer = Cli.Address(FreePort.Next()), // nothing listens there: the peer is down
            Witness = ((IPEndPoint)witness.LocalEndPoint!).ToString(),
            InitialRole = NodeRole.Standby,
            HeartbeatInterval = TimeSpan.FromSeconds(2),
            HeartbeatTimeout = TimeSpan.FromSeconds(60), // no lease request of its own meanwhile
            LeaseTtl = TimeSpan.FromSeconds(30), // a witness lease is at most 60 s (not twice the heartbeat timeout)
            PromoteAnswerTimeout = TimeSpan.FromSeconds(1),
            Log = lines.Enqueue,
        });
        await using (node)
        {
            var admin = await node.StartAdminAsync("127.0.0.1", 0);
            await using (admin)
            {
                // Standby once its own lease request at start has gone unanswered (1 s).
                try
                {
                    await Eventually.TrueAsync(() => node.Role == NodeRole.Standby, "the node decides it is a standby");
                }
                catch (TimeoutException ex)
                {
                    Assert.Fail($"{ex.Message}: it is {node.Role}\n{string.Join('\n', lines)}");
                }
                string[] args = ["promote", "--admin", admin.EndPoint.ToString()!];

                // The standby takes the request up at once, unless a loaded machine delays its loop past the 1 s the
                // POST waits: then the node answers 409 (withdrawn, nothing happened) and the promotion is asked again.
                CliOutcome outcome;
                var attempt = 0;
                do
                {
                    attempt++;
                    outcome = await CliOutcome.RunAsync(args);
                    output.WriteLine($"attempt {attempt}: exit {outcome.ExitCode}, stdout [{outcome.Output}], stderr [{outcome.Errors.Trim()}]");
                }
                while (attempt < 5 && outcome.ExitCode != 75 && outcome.Errors.Contains("did not take the promotion up", StringComparison.Ordinal));

                Assert.True(
                    outcome.ExitCode == 75
                        && outcome.Output.Contains("\"inProgress\":true", StringComparison.Ordinal)
                        && outcome.Errors.Contains("under way", StringComparison.Ordinal)
                        && outcome.Errors.Contains($"/primary", StringComparison.Ordinal)
                        && !outcome.HasStackTrace,
                    $"expected exit 75, the node's answer on stdout and how to check on stderr: {outcome.Describe(args)}, stdout: [{outcome.Output}]\n--- node ---\n{string.Join('\n', lines)}");
            }
        }
    }
}
