using System.Collections.Concurrent;
using System.Globalization;
using System.Runtime.CompilerServices;
using FastBroker.Replication;
using FastBroker.Server;
using FastBroker.Testing;

namespace FastBroker.ReplicationTests;

/// <summary>
/// The largest epoch, 2^63 - 2 (a node's <c>node.state</c> holds at most it), has no successor: a witness asked for a
/// new holder's epoch past it, and a node promoted past it without a witness, refuse with an error that names it, and
/// nothing is written (no epoch 2^63 - 1, which no node starts with, and no wrap to a negative one).
/// </summary>
public sealed class EpochExhaustionTests
{
    private const long MaxEpoch = long.MaxValue - 1;
    private static readonly string s_max = MaxEpoch.ToString(CultureInfo.InvariantCulture);

    [Fact]
    public async Task A_witness_asked_past_the_largest_epoch_refuses_naming_it_and_keeps_its_state()
    {
        await using var witness = await WitnessFixture.StartAsync();
        var client = witness.Client();
        var before = File.Exists(witness.StatePath) ? File.ReadAllText(witness.StatePath) : null;

        var answer = await client.AcquireAsync("a", MaxEpoch, TimeSpan.FromSeconds(1));

        Assert.True(answer.Kind == LeaseResultKind.Error && answer.Message!.Contains($"epoch {s_max}", StringComparison.Ordinal), $"asked at epoch {s_max}: {answer}; witness log: {string.Join(" | ", witness.Log)}");
        Assert.Equal(before, File.Exists(witness.StatePath) ? File.ReadAllText(witness.StatePath) : null);
        var status = await client.StatusAsync();
        Assert.True(status is { Kind: LeaseResultKind.Status, Holder: null }, $"no holder after the refusal: {status}");

        // The largest epoch itself is granted (from the one below it), and its holder renews it; nobody gets a next one.
        var granted = await client.AcquireAsync("a", MaxEpoch - 1, TimeSpan.FromSeconds(1));
        Assert.True(granted is { Kind: LeaseResultKind.Granted, Epoch: MaxEpoch }, $"asked at epoch {MaxEpoch - 1}: {granted}");
        var renewed = await client.AcquireAsync("a", MaxEpoch, TimeSpan.FromSeconds(1));
        Assert.True(renewed is { Kind: LeaseResultKind.Granted, Epoch: MaxEpoch }, $"renewal at epoch {s_max}: {renewed}");
        Assert.Contains($"epoch {s_max}", File.ReadAllText(witness.StatePath), StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_node_at_the_largest_epoch_without_a_witness_refuses_a_promotion_naming_it()
    {
        using var dir = new TempDirectory("fastbroker-node-epoch");
        var options = new ReplicationOptions
        {
            NodeId = "a",
            DataDirectory = dir.Combine("a"),
            Port = 0,
            Peer = "127.0.0.1:1", // nobody: the node waits as standby
            InitialRole = NodeRole.Standby,
            PeerWait = TimeSpan.Zero,
        };
        var statePath = Path.Combine(options.DataDirectory, "replication", "node.state");
        Directory.CreateDirectory(Path.GetDirectoryName(statePath)!);
        File.WriteAllText(statePath, $"epoch={s_max}\nrole=Standby\n");

        await using var node = await ReplicatedNode.StartAsync(BrokerOptions.Default, ServerOptions.Default with { Port = 0 }, options);
        await Eventually.TrueAsync(() => node.Role == NodeRole.Standby, "a waits as standby");
        var promoted = -1L;
        var refusal = await Record.ExceptionAsync(async () => promoted = await node.PromoteAsync().WaitAsync(TimeSpan.FromSeconds(30)));

        Assert.True(
            refusal is InvalidOperationException && refusal.Message.Contains($"epoch {s_max}", StringComparison.Ordinal),
            $"promotion at epoch {s_max}: {(refusal is null ? $"promoted to epoch {promoted}" : refusal.ToString())}; node.state: {File.ReadAllText(statePath)}");
        Assert.Contains($"epoch={s_max}\n", File.ReadAllText(statePath), StringComparison.Ordinal);
        Assert.Equal(MaxEpoch, node.Epoch);
        await Eventually.TrueAsync(() => node.Role == NodeRole.Standby, "a stays standby");
    }

    /// <summary>
    /// Without a witness a standby takes over on its own when its peer answers, is not primary, defers to it and holds
    /// less of the log. At 2^63 - 2 it must not (no epoch follows), and says why once, however often it finds so.
    /// </summary>
    [Fact]
    public async Task A_standby_at_the_largest_epoch_without_a_witness_does_not_take_over_when_its_peer_defers_to_it()
    {
        using var dir = new TempDirectory("fastbroker-node-epoch");
        using var peer = new DeferringPeer();
        var lines = new ConcurrentQueue<string>();
        var options = new ReplicationOptions
        {
            NodeId = "a",
            DataDirectory = dir.Combine("a"),
            Port = 0,
            Peer = $"127.0.0.1:{peer.Port}",
            InitialRole = NodeRole.Standby,
            PeerWait = TimeSpan.Zero,
            Log = lines.Enqueue,
        };
        var statePath = WriteNodeState(options, MaxEpoch);

        await using var node = await ReplicatedNode.StartAsync(BrokerOptions.Default, ServerOptions.Default with { Port = 0 }, options);
        await Eventually.TrueAsync(() => peer.Probes >= 10 || node.Role == NodeRole.Primary, "a probes its deferring peer ten times, or takes over");

        var log = string.Join(" | ", lines);
        Assert.True(node.Role == NodeRole.Standby && node.Epoch == MaxEpoch, $"a is {node.Role} at epoch {node.Epoch} after its peer deferred to it; node.state: {File.ReadAllText(statePath)}; log: {log}");
        Assert.Contains($"epoch={s_max}\n", File.ReadAllText(statePath), StringComparison.Ordinal);
        var refusals = lines.Count(l => l.Contains($"standby: not taking over: no new epoch can follow epoch {s_max}", StringComparison.Ordinal));
        Assert.True(refusals == 1, $"a said {refusals} times that it does not take over ({peer.Probes} probes of its deferring peer); log: {log}");
    }

    /// <summary>
    /// With a witness a standby whose primary is silent asks for the lease every half heartbeat; at 2^63 - 2 the witness
    /// refuses it every time (ERROR, no epoch follows). The standby says so once, and asks only once per lease TTL
    /// (30 s here) while it cannot be granted a new epoch, not at each round of its loop.
    /// </summary>
    [Fact]
    public async Task A_standby_at_the_largest_epoch_logs_the_witness_refusal_once_and_asks_once_per_lease_ttl()
    {
        using var dir = new TempDirectory("fastbroker-node-epoch");
        using var witness = new RefusingWitness();
        var lines = new ConcurrentQueue<string>();
        var rounds = new StrongBox<int>();
        var options = SilentPrimaryStandby(dir, witness, lines, rounds);
        const string Refusal = "the witness did not grant the lease: no new epoch can follow epoch";

        await using var node = await ReplicatedNode.StartAsync(BrokerOptions.Default, ServerOptions.Default with { Port = 0 }, options);
        await Eventually.TrueAsync(() => lines.Any(l => l.Contains(Refusal, StringComparison.Ordinal)) || witness.Asks >= 10, "a logs the witness's refusal, or asks ten times");
        Assert.True(lines.Any(l => l.Contains(Refusal, StringComparison.Ordinal)), $"a asked the witness {witness.Asks} times and never logged its refusal; log: {string.Join(" | ", lines)}");

        var asks = witness.Asks;
        var from = Volatile.Read(ref rounds.Value);
        await Eventually.TrueAsync(() => Volatile.Read(ref rounds.Value) >= from + 20, "20 more rounds of a's standby loop");
        var more = witness.Asks - asks;
        var logged = lines.Count(l => l.Contains(Refusal, StringComparison.Ordinal));
        Assert.True(more <= 1, $"a asked the witness {more} more times in 20 rounds of its standby loop after the refusal (lease TTL 30 s); log: {string.Join(" | ", lines)}");
        Assert.True(logged == 1, $"a logged the witness's refusal {logged} times; log: {string.Join(" | ", lines)}");
        Assert.Equal(NodeRole.Standby, node.Role);
        Assert.Equal(MaxEpoch, node.Epoch);
    }

    /// <summary>
    /// The start's decision asks the witness first, and is refused as any ask at 2^63 - 2 is: the standby's loop, which
    /// asks once the primary has been silent for the heartbeat timeout (500 ms), asks again only a lease TTL (30 s here)
    /// after that refusal, not at its first chance; the refusal is one line, the role change's.
    /// </summary>
    [Fact]
    public async Task A_standby_at_the_largest_epoch_refused_at_its_start_asks_again_only_after_a_lease_ttl()
    {
        using var dir = new TempDirectory("fastbroker-node-epoch");
        using var witness = new RefusingWitness();
        var lines = new ConcurrentQueue<string>();
        var rounds = new StrongBox<int>();
        var options = SilentPrimaryStandby(dir, witness, lines, rounds);

        await using var node = await ReplicatedNode.StartAsync(BrokerOptions.Default, ServerOptions.Default with { Port = 0 }, options);

        // 20 rounds of the loop take at least 20 half heartbeats (1 s): past the heartbeat timeout, so the loop would ask.
        await Eventually.TrueAsync(() => Volatile.Read(ref rounds.Value) >= 20, "20 rounds of a's standby loop");
        var log = string.Join(" | ", lines);
        Assert.True(witness.Asks == 1, $"a asked the witness {witness.Asks} times from its start through 20 rounds of its standby loop (lease TTL 30 s); log: {log}");
        var logged = lines.Count(l => l.Contains("the witness did not grant the lease: no new epoch can follow epoch", StringComparison.Ordinal));
        Assert.True(logged == 1, $"a logged the witness's refusal {logged} times; log: {log}");
        Assert.Equal(NodeRole.Standby, node.Role);
        Assert.Equal(MaxEpoch, node.Epoch);
    }

    private static string WriteNodeState(ReplicationOptions options, long epoch)
    {
        var statePath = Path.Combine(options.DataDirectory, "replication", "node.state");
        Directory.CreateDirectory(Path.GetDirectoryName(statePath)!);
        File.WriteAllText(statePath, string.Create(CultureInfo.InvariantCulture, $"epoch={epoch}\nrole=Standby\n"));
        return statePath;
    }

    /// <summary>
    /// Node a as a standby at epoch 2^63 - 2 whose primary is silent (nobody at its peer's address), asking
    /// <paramref name="witness"/> for a 30 s lease; <paramref name="rounds"/> counts the rounds of its standby loop.
    /// </summary>
    private static ReplicationOptions SilentPrimaryStandby(TempDirectory dir, RefusingWitness witness, ConcurrentQueue<string> lines, StrongBox<int> rounds)
    {
        var options = new ReplicationOptions
        {
            NodeId = "a",
            DataDirectory = dir.Combine("a"),
            Port = 0,
            Peer = "127.0.0.1:1", // nobody: the primary is silent
            Witness = witness.Endpoint,
            LeaseTtl = TimeSpan.FromSeconds(30),
            InitialRole = NodeRole.Standby,
            PeerWait = TimeSpan.Zero,
            Log = lines.Enqueue,
            LinkEnded = _ => Interlocked.Increment(ref rounds.Value),
        };
        WriteNodeState(options, MaxEpoch);
        return options;
    }
}
