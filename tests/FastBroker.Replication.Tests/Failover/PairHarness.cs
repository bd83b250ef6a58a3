using FastBroker.Testing;

namespace FastBroker.ReplicationTests.Failover;

/// <summary>
/// The processes and directories of one pair test: an optional witness, the nodes, replication-link proxies, all
/// killed and deleted on dispose (also when the test fails), and their logs for the failure message.
/// </summary>
internal sealed class PairHarness : IAsyncDisposable
{
    private readonly TempDirectory _dir = new("fastbroker-failover");
    private readonly List<NodeProcess> _nodes = [];
    private readonly List<TcpProxy> _proxies = [];

    public WitnessProcess? Witness { get; private set; }

    public string Root => _dir.Path;

    /// <summary>Everything the processes wrote on stderr: role changes, link events, truncations, grants and denials.</summary>
    public string Logs =>
        string.Join('\n', _nodes.Select(n => n.Logs)) + (Witness is null ? "" : $"\n--- witness ---\n{Witness.Log}");

    public async Task<WitnessProcess> StartWitnessAsync()
    {
        Witness = await WitnessProcess.StartAsync(_dir.Combine("witness"));
        return Witness;
    }

    /// <summary>A node (not started) with its data in <c>&lt;root&gt;/&lt;id&gt;</c>.</summary>
    public NodeProcess AddNode(string id, int replicationPort, string peer, IEnumerable<string> extra)
    {
        var node = new NodeProcess(id, _dir.Combine(id), replicationPort, peer, extra);
        _nodes.Add(node);
        return node;
    }

    /// <summary>The proxy b reaches a through (<see cref="AddPair"/> with proxied links): cut it and b cannot see a.</summary>
    public TcpProxy? ToA { get; private set; }

    /// <summary>The proxy a reaches b through (<see cref="AddPair"/> with proxied links): cut it and a cannot see b.</summary>
    public TcpProxy? ToB { get; private set; }

    /// <summary>The proxy a reaches the witness through (<see cref="StartWitnessedPairAsync(bool, string[])"/>).</summary>
    public TcpProxy? WitnessOfA { get; private set; }

    /// <summary>
    /// Nodes a and b (not started) peered with each other, directly or, with <paramref name="proxied"/>, each through a
    /// proxy (<see cref="ToA"/>, <see cref="ToB"/>) that a test can cut: the replication link and the peer probes.
    /// </summary>
    public (NodeProcess A, NodeProcess B) AddPair(string[] optionsA, string[] optionsB, bool proxied = false)
    {
        int portA = FreePort.Next(), portB = FreePort.Next();
        if (proxied)
        {
            ToA = AddProxy(portA);
            ToB = AddProxy(portB);
        }

        var a = AddNode("a", portA, ToB?.Endpoint ?? $"127.0.0.1:{portB}", optionsA);
        var b = AddNode("b", portB, ToA?.Endpoint ?? $"127.0.0.1:{portA}", optionsB);
        return (a, b);
    }

    /// <summary>
    /// A witness and two nodes peered directly with <paramref name="options"/> (the witness endpoint is added): a
    /// takes the lease and b follows it (<see cref="WaitForConfirming"/>). Returns a's status as primary.
    /// </summary>
    public Task<(NodeProcess A, NodeProcess B, NodeStatus Primary)> StartWitnessedPairAsync(params string[] options) =>
        StartWitnessedPairAsync(proxyWitnessOfA: false, options);

    /// <summary>
    /// <see cref="StartWitnessedPairAsync(string[])"/>, a reaching the witness through <see cref="WitnessOfA"/> when
    /// <paramref name="proxyWitnessOfA"/> (cut it and a can neither renew nor take the lease), b directly.
    /// </summary>
    public Task<(NodeProcess A, NodeProcess B, NodeStatus Primary)> StartWitnessedPairAsync(bool proxyWitnessOfA, params string[] options) =>
        StartWitnessedPairAsync(proxyWitnessOfA, proxied: false, options);

    /// <summary>
    /// <see cref="StartWitnessedPairAsync(bool, string[])"/>, the nodes peered through proxies (<see cref="AddPair"/>)
    /// when <paramref name="proxied"/>.
    /// </summary>
    public async Task<(NodeProcess A, NodeProcess B, NodeStatus Primary)> StartWitnessedPairAsync(bool proxyWitnessOfA, bool proxied, params string[] options)
    {
        var witness = await StartWitnessAsync();
        WitnessOfA = proxyWitnessOfA ? AddProxy(witness.Port) : null;
        var (a, b) = AddPair(["--witness", WitnessOfA?.Endpoint ?? witness.Endpoint, .. options], ["--witness", witness.Endpoint, .. options], proxied);
        return await StartInOrderAsync(a, b, "a takes the lease");
    }

    /// <summary>
    /// Two nodes without a witness: a started with <c>--role primary</c>, then b with <c>--role standby</c> following
    /// it (<see cref="WaitForConfirming"/>); each with its own extra options, peered directly or through proxies
    /// (<see cref="AddPair"/>).
    /// </summary>
    public async Task<(NodeProcess A, NodeProcess B, NodeStatus Primary)> StartConfiguredPairAsync(string[] optionsA, string[] optionsB, bool proxied = false)
    {
        var (a, b) = AddPair(["--role", "primary", .. optionsA], ["--role", "standby", .. optionsB], proxied);
        return await StartInOrderAsync(a, b, "a is primary");
    }

    public TcpProxy AddProxy(int targetPort)
    {
        var proxy = new TcpProxy(targetPort);
        _proxies.Add(proxy);
        return proxy;
    }

    /// <summary>
    /// Whether the pair starts (<see cref="StartConfiguredPairAsync"/>, <see cref="StartWitnessedPairAsync(bool, bool, string[])"/>)
    /// return only once a counts b in its replication gate (<c>standby.confirming</c>), not only once b follows a: true
    /// (the default). b follows a once it has read the WELCOME, while a still reads b's STATE_DIGESTS and sends the
    /// state files before it counts b; a publish meanwhile is confirmed as with no standby (degraded to local, or held).
    /// False for a test that needs the pair as soon as b follows a.
    /// </summary>
    public bool WaitForConfirming { get; init; } = true;

    /// <summary>
    /// Starts a and waits for it to be primary, then b and waits for it to follow a and (<see cref="WaitForConfirming"/>)
    /// for a to count it. Returns a's last status read (as primary; with its standby confirming when waited for).
    /// </summary>
    private async Task<(NodeProcess A, NodeProcess B, NodeStatus Primary)> StartInOrderAsync(NodeProcess a, NodeProcess b, string primaryBecause)
    {
        await a.StartAsync();
        var primary = await a.WaitForAsync(s => s.IsPrimary, primaryBecause);
        await b.StartAsync();
        await b.WaitForAsync(s => s.IsStandby && s.Replica is { Connected: true }, "b follows a");
        if (WaitForConfirming)
        {
            primary = await a.WaitForAsync(s => s.StandbyConfirming, "a counts b in its replication gate (standby.confirming) once b follows it");
        }

        return (a, b, primary);
    }

    public async ValueTask DisposeAsync()
    {
        foreach (var node in _nodes)
        {
            node.Dispose();
        }

        Witness?.Dispose();
        foreach (var proxy in _proxies)
        {
            await proxy.DisposeAsync();
        }

        _dir.Dispose();
    }
}
