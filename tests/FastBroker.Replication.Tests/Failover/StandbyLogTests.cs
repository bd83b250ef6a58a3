using System.Collections.Concurrent;
using FastBroker.Replication;
using FastBroker.Server;
using FastBroker.Testing;

namespace FastBroker.ReplicationTests.Failover;

/// <summary>
/// A standby retries a peer it cannot follow every 50 ms. Its log and the last-50 event list of <c>/status</c> must
/// show why once, not once per attempt, or the lines an operator needs (promotion, deferral, truncations) are pushed out.
/// </summary>
public sealed class StandbyLogTests
{
    [Fact]
    public async Task A_standby_whose_peer_is_unreachable_logs_the_reason_once_not_per_attempt()
    {
        using var dir = new TempDirectory();
        var lines = new ConcurrentQueue<string>();
        await using var node = await StartStandbyAsync(dir, "lonely", FreePort.Next(), FreePort.Next(), lines); // nothing listens at its peer

        await AssertLoggedOnceAsync(node, lines, "cannot connect");
    }

    /// <summary>
    /// Two standbys without a witness (each waits to follow the other): each refuses the other's hello. A node deferring
    /// to its peer meets the same refusal for up to <c>--peer-wait-ms</c>; it used to log it every 50 ms, so its deferral
    /// was gone from <c>/status</c> after about 2.5 s.
    /// </summary>
    [Fact]
    public async Task A_standby_whose_peer_refuses_it_logs_the_refusal_once_not_per_attempt()
    {
        using var dir = new TempDirectory();
        int portA = FreePort.Next(), portB = FreePort.Next();
        var linesA = new ConcurrentQueue<string>();
        await using var a = await StartStandbyAsync(dir, "a", portA, portB, linesA);
        await using var b = await StartStandbyAsync(dir, "b", portB, portA, new ConcurrentQueue<string>());

        await AssertLoggedOnceAsync(a, linesA, "refused by");
    }

    private static Task<ReplicatedNode> StartStandbyAsync(TempDirectory dir, string id, int port, int peer, ConcurrentQueue<string> lines) =>
        ReplicatedNode.StartAsync(BrokerOptions.Default, ServerOptions.Default with { Port = 0 }, new ReplicationOptions
        {
            NodeId = id,
            DataDirectory = dir.Combine(id),
            Port = port,
            Peer = $"127.0.0.1:{peer}",
            InitialRole = NodeRole.Standby,
            Log = lines.Enqueue,
        });

    /// <summary>
    /// After several attempts to follow its peer, the node has logged the reason (and shows it in /status) once per
    /// distinct text: a peer still starting when the first attempt reaches it refuses as "Starting", then as "Standby",
    /// and each is worth one line (a loaded CI machine made that first attempt early enough), but no text repeats.
    /// </summary>
    private static async Task AssertLoggedOnceAsync(ReplicatedNode node, ConcurrentQueue<string> lines, string reason)
    {
        await Eventually.TrueAsync(() => node.LinkAttempts >= 8, "the standby retried its peer several times");
        var logged = Reasons(lines, reason);
        Assert.True(logged.Count >= 1 && logged.Count == logged.Distinct().Count(), $"{node.LinkAttempts} attempts logged:\n{string.Join('\n', lines)}");
        var events = Reasons(NodeStatus.Parse(node.GetStatusJson()).Events, reason);
        Assert.True(events.Count >= 1 && events.Count == events.Distinct().Count(), $"events in /status:\n{string.Join('\n', events)}");
    }

    /// <summary>The lines holding <paramref name="reason"/>, each from the reason on (without the time stamp).</summary>
    private static List<string> Reasons(IEnumerable<string> lines, string reason) =>
        [.. lines.Where(l => l.Contains(reason, StringComparison.Ordinal)).Select(l => l[l.IndexOf(reason, StringComparison.Ordinal)..])];
}
