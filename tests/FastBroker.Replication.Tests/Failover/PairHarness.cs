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

    /// <summary>
    /// A witness and two nodes peered directly with <paramref name="options"/> (the witness endpoint is added): a
    /// takes the lease and b follows it. Returns a's status as primary.
    /// </summary>
    public async Task<(NodeProcess A, NodeProcess B, NodeStatus Primary)> StartWitnessedPairAsync(params string[] options)
    {
        var witness = await StartWitnessAsync();
        int portA = FreePort.Next(), portB = FreePort.Next();
        string[] all = ["--witness", witness.Endpoint, .. options];
        var a = AddNode("a", portA, $"127.0.0.1:{portB}", all);
        var b = AddNode("b", portB, $"127.0.0.1:{portA}", all);
        await a.StartAsync();
        var primary = await a.WaitForAsync(s => s.IsPrimary, "a takes the lease");
        await b.StartAsync();
        await b.WaitForAsync(s => s.IsStandby && s.Replica is { Connected: true }, "b follows a");
        return (a, b, primary);
    }

    /// <summary>
    /// Two nodes peered directly without a witness: a started with <c>--role primary</c>, then b with
    /// <c>--role standby</c> following it; each with its own extra options.
    /// </summary>
    public async Task<(NodeProcess A, NodeProcess B, NodeStatus Primary)> StartConfiguredPairAsync(string[] optionsA, string[] optionsB)
    {
        int portA = FreePort.Next(), portB = FreePort.Next();
        var a = AddNode("a", portA, $"127.0.0.1:{portB}", ["--role", "primary", .. optionsA]);
        var b = AddNode("b", portB, $"127.0.0.1:{portA}", ["--role", "standby", .. optionsB]);
        await a.StartAsync();
        var primary = await a.WaitForAsync(s => s.IsPrimary, "a is primary");
        await b.StartAsync();
        await b.WaitForAsync(s => s.IsStandby && s.Replica is { Connected: true }, "b follows a");
        return (a, b, primary);
    }

    public TcpProxy AddProxy(int targetPort)
    {
        var proxy = new TcpProxy(targetPort);
        _proxies.Add(proxy);
        return proxy;
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
