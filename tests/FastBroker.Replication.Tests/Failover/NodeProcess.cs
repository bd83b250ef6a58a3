using System.Diagnostics;
using System.Globalization;
using FastBroker.Testing;

namespace FastBroker.ReplicationTests.Failover;

/// <summary>
/// One node of a failover pair: <c>fastbroker serve --peer …</c> as a child process with fixed ports (client, admin,
/// replication) and data directory, so that it can be killed with SIGKILL and started again as the same node.
/// </summary>
internal sealed class NodeProcess : IDisposable
{
    private static readonly HttpClient s_http = new() { Timeout = TimeSpan.FromSeconds(60) };
    private readonly List<ChildProcess> _lives = [];
    private readonly string[] _args;

    public NodeProcess(string id, string dataDirectory, int replicationPort, string peer, IEnumerable<string> extra)
    {
        Id = id;
        DataDirectory = dataDirectory;
        ReplicationPort = replicationPort;
        ClientPort = FreePort.Next();
        AdminPort = FreePort.Next();
        _args =
        [
            "serve", "--data", dataDirectory, "--port", ClientPort.ToString(CultureInfo.InvariantCulture),
            "--admin-port", AdminPort.ToString(CultureInfo.InvariantCulture), "--replication-port", replicationPort.ToString(CultureInfo.InvariantCulture),
            "--peer", peer, "--node-id", id, .. extra,
        ];
    }

    public string Id { get; }

    public string DataDirectory { get; }

    public int ClientPort { get; }

    public int AdminPort { get; }

    public int ReplicationPort { get; }

    public string ClientEndpoint => $"127.0.0.1:{ClientPort}";

    /// <summary>The admin HTTP port's address (host:port).</summary>
    public string AdminEndpoint => $"127.0.0.1:{AdminPort}";

    public bool IsRunning => _lives.Count > 0 && !_lives[^1].HasExited;

    /// <summary>The process id of the running life (for <c>/proc/&lt;pid&gt;</c>).</summary>
    public int Pid => _lives[^1].Id;

    /// <summary>The node's stderr (role changes, link events, truncations) over all its lives.</summary>
    public string Logs => string.Join('\n', _lives.Select((p, i) => $"--- node {Id}, life {i + 1} ---\n{p.Errors}"));

    /// <summary>Starts the node (again) and waits for its ready line; its role is decided in the background.</summary>
    public async Task StartAsync()
    {
        Assert.False(IsRunning, $"node {Id} is already running");
        _lives.Add(await Cli.StartAsync("fastbroker node '", _args));
    }

    /// <summary>SIGKILL; returns once the OS has reaped it.</summary>
    public void Kill()
    {
        Assert.True(IsRunning, $"node {Id} is not running");
        _lives[^1].Kill();
    }

    /// <summary>
    /// SIGSTOP (<paramref name="freeze"/>) or SIGCONT: a node that stops dead without closing anything, as a frozen VM
    /// or a host that lost power looks to its peers (no FIN, no RST, silence).
    /// </summary>
    public void Freeze(bool freeze = true)
    {
        Assert.True(IsRunning, $"node {Id} is not running");
        using var kill = Process.Start(new ProcessStartInfo("kill", [freeze ? "-STOP" : "-CONT", _lives[^1].Id.ToString(CultureInfo.InvariantCulture)]))!;
        kill.WaitForExit();
        Assert.Equal(0, kill.ExitCode);
    }

    /// <summary>GET /status, or null when the node does not answer.</summary>
    public async Task<NodeStatus?> TryStatusAsync()
    {
        if (!IsRunning)
        {
            return null;
        }

        try
        {
            using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(5));
            return NodeStatus.Parse(await s_http.GetStringAsync(new Uri($"http://127.0.0.1:{AdminPort}/status"), timeout.Token));
        }
        catch (Exception ex) when (ex is HttpRequestException or OperationCanceledException)
        {
            return null;
        }
    }

    /// <summary>Polls /status until <paramref name="condition"/> holds (or fails the test with the last status and the node's log).</summary>
    public async Task<NodeStatus> WaitForAsync(Func<NodeStatus, bool> condition, string because, TimeSpan? timeout = null)
    {
        var limit = timeout ?? Eventually.DefaultTimeout;
        var sw = Stopwatch.StartNew();
        NodeStatus? last = null;
        while (true)
        {
            last = await TryStatusAsync() ?? last;
            if (last is not null && condition(last))
            {
                return last;
            }

            if (sw.Elapsed > limit)
            {
                throw new TimeoutException($"node {Id}: not within {limit.TotalSeconds:0} s: {because}\nlast status: {last?.Json ?? "none"}\n{Logs}");
            }

            await Task.Delay(20); // polling interval of a condition with a deadline
        }
    }

    /// <summary>POST /promote (or /promote/force): (HTTP status, body).</summary>
    public async Task<(int Status, string Body)> PromoteAsync(bool force = false)
    {
        using var response = await s_http.PostAsync(new Uri($"http://127.0.0.1:{AdminPort}/promote{(force ? "/force" : "")}"), content: null);
        return ((int)response.StatusCode, await response.Content.ReadAsStringAsync());
    }

    public void Dispose()
    {
        foreach (var life in _lives)
        {
            life.Dispose();
        }
    }
}
