using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Runtime.InteropServices;
using System.Text;

namespace FastBroker.Bench.Pair;

/// <summary>
/// A failover pair on 127.0.0.1 for the benchmarks: a witness and nodes <c>a</c> and <c>b</c>, each a child process
/// of the <c>fastbroker</c> executable (<c>fastbroker witness</c>, <c>fastbroker serve --peer …</c>) on free ports,
/// with data in a fresh temporary directory. The children are killed on dispose, on SIGINT/SIGTERM/SIGQUIT and at
/// process exit, so an interrupted benchmark leaves no broker behind.
/// </summary>
internal sealed class LocalPair : IAsyncDisposable
{
    /// <summary>500 ms, the documented pair setting; the lease TTL is twice this (1 s), so a failover takes 1-2 s.</summary>
    public const int HeartbeatTimeoutMs = 500;

    private readonly int _heartbeatTimeoutMs;

    private readonly FastBrokerExecutable _executable;
    private readonly string _directory;
    private readonly int _witnessPort;
    private readonly IReadOnlyList<string> _nodeArguments;
    private readonly List<PosixSignalRegistration> _signals = [];
    private readonly object _deleteGate = new();
    private readonly EventHandler _onExit;
    private PairProcess? _witness;
    private int _disposed;
    private volatile bool _interrupted;

    private LocalPair(FastBrokerExecutable executable, string directory, int[] ports, IReadOnlyList<string> nodeArguments, int heartbeatTimeoutMs)
    {
        _executable = executable;
        _heartbeatTimeoutMs = heartbeatTimeoutMs;
        _directory = directory;
        _witnessPort = ports[0];
        _nodeArguments = nodeArguments;
        A = new PairNodeProcess("a", ports[1], ports[2], ports[3], Path.Combine(directory, "a"));
        B = new PairNodeProcess("b", ports[4], ports[5], ports[6], Path.Combine(directory, "b"));
        _onExit = (_, _) => KillAllAndDeleteData();
    }

    /// <summary>Node <c>a</c>.</summary>
    public PairNodeProcess A { get; }

    /// <summary>Node <c>b</c>.</summary>
    public PairNodeProcess B { get; }

    /// <summary>Both nodes' client endpoints (a client of the pair is given both).</summary>
    public IReadOnlyList<string> ClientEndpoints => [A.ClientEndpoint, B.ClientEndpoint];

    /// <summary>
    /// Starts the witness, waits until it accepts connections (a node that cannot reach it at start settles as
    /// standby and promotes only after a heartbeat timeout), then both nodes (<paramref name="nodeArguments"/> added
    /// to each <c>serve</c>, whose heartbeat timeout is <paramref name="heartbeatTimeoutMs"/>); returns without waiting for roles.
    /// </summary>
    public static async Task<LocalPair> StartAsync(FastBrokerExecutable executable, string? workDirectory, IReadOnlyList<string> nodeArguments, CancellationToken cancellationToken, int heartbeatTimeoutMs = HeartbeatTimeoutMs)
    {
        var directory = Path.Combine(workDirectory ?? Path.GetTempPath(), "fastbroker-bench-pair-" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(directory);
        var pair = new LocalPair(executable, directory, FreePorts(7), nodeArguments, heartbeatTimeoutMs);
        try
        {
            pair.KillChildrenOnExit();
            pair._witness = PairProcess.Start(executable, "witness", ["witness", "--host", "127.0.0.1", "--port", Port(pair._witnessPort), "--data", Path.Combine(directory, "witness")]);
            await pair.WaitForWitnessAsync(TimeSpan.FromSeconds(30), cancellationToken).ConfigureAwait(false);
            pair.StartNode(pair.A);
            pair.StartNode(pair.B);
            return pair;
        }
        catch (Exception ex) when (ex is TimeoutException)
        {
            var failure = await pair.WithDiagnosticsAsync(ex).ConfigureAwait(false);
            await pair.DisposeAsync().ConfigureAwait(false);
            throw failure;
        }
        catch
        {
            await pair.DisposeAsync().ConfigureAwait(false);
            throw;
        }
    }

    /// <summary>The other node.</summary>
    public PairNodeProcess Other(PairNodeProcess node) => ReferenceEquals(node, A) ? B : A;

    /// <summary>The node's <c>/status</c>, or null when it does not answer.</summary>
    public static Task<NodeStatus?> StatusAsync(PairNodeProcess node, CancellationToken cancellationToken) => NodeStatus.GetAsync(node.AdminEndpoint, cancellationToken);

    /// <summary>Waits until one node is primary with the other attached as its standby; returns them.</summary>
    public async Task<(PairNodeProcess Primary, PairNodeProcess Standby)> WaitForAttachedPairAsync(TimeSpan timeout, CancellationToken cancellationToken)
    {
        var deadline = Stopwatch.GetTimestamp() + (long)(timeout.TotalSeconds * Stopwatch.Frequency);
        while (true)
        {
            foreach (var node in new[] { A, B })
            {
                var status = await StatusAsync(node, cancellationToken).ConfigureAwait(false);
                if (status is { IsPrimary: true, StandbyAttached: true }
                    && await StatusAsync(Other(node), cancellationToken).ConfigureAwait(false) is { IsStandby: true })
                {
                    return (node, Other(node));
                }
            }

            if (Stopwatch.GetTimestamp() > deadline)
            {
                throw new TimeoutException($"no primary with an attached standby within {timeout.TotalSeconds:0} s");
            }

            await Task.Delay(20, cancellationToken).ConfigureAwait(false);
        }
    }

    /// <summary>Polls <paramref name="node"/>'s status every <paramref name="pollMs"/> until <paramref name="until"/> holds.</summary>
    public async Task<NodeStatus> WaitForAsync(PairNodeProcess node, Func<NodeStatus, bool> until, string what, TimeSpan timeout, CancellationToken cancellationToken, int pollMs = 20)
    {
        var deadline = Stopwatch.GetTimestamp() + (long)(timeout.TotalSeconds * Stopwatch.Frequency);
        while (true)
        {
            if (await StatusAsync(node, cancellationToken).ConfigureAwait(false) is { } status && until(status))
            {
                return status;
            }

            if (Stopwatch.GetTimestamp() > deadline)
            {
                throw new TimeoutException($"node '{node.Name}': {what} did not happen within {timeout.TotalSeconds:0} s");
            }

            await Task.Delay(pollMs, cancellationToken).ConfigureAwait(false);
        }
    }

    /// <summary>SIGKILL the node and wait until the OS has reaped it.</summary>
    public static void Kill(PairNodeProcess node) => node.Process?.Kill();

    /// <summary>Starts the node again on its data directory and ports (a killed node rejoins as standby).</summary>
    public void Restart(PairNodeProcess node)
    {
        node.Process?.Dispose();
        StartNode(node);
    }

    /// <summary>
    /// A failure of a benchmark on this pair, with <see cref="DiagnosticsAsync"/> appended to its message. After a
    /// Ctrl-C the failure is only the children dying (the terminal signals them too): this never returns then, the
    /// signal handler ends the process quietly.
    /// </summary>
    public async Task<Exception> WithDiagnosticsAsync(Exception ex)
    {
        if (_interrupted)
        {
            await Task.Delay(Timeout.Infinite).ConfigureAwait(false);
        }

        return new InvalidOperationException($"{ex.GetType().Name}: {ex.Message}{Environment.NewLine}{await DiagnosticsAsync().ConfigureAwait(false)}", ex);
    }

    /// <summary>Both nodes' status (or "unreachable") and the last lines every child printed.</summary>
    public async Task<string> DiagnosticsAsync()
    {
        var sb = new StringBuilder();
        foreach (var node in new[] { A, B })
        {
            var status = await StatusAsync(node, CancellationToken.None).ConfigureAwait(false);
            sb.Append(CultureInfo.InvariantCulture, $"node '{node.Name}' (client {node.ClientEndpoint}, admin {node.AdminEndpoint}): ").AppendLine(status?.Json ?? "unreachable");
            sb.Append(CultureInfo.InvariantCulture, $"node '{node.Name}' replication/node.state (epoch history: epoch, each topic's head when it began, #leader): ").AppendLine(ReadNodeState(node));
        }

        foreach (var p in new[] { _witness, A.Process, B.Process })
        {
            if (p is not null)
            {
                sb.AppendLine(CultureInfo.InvariantCulture, $"last output of {p.Name}{(p.HasExited ? " (exited)" : "")}:").AppendLine(p.Tail());
            }
        }

        return sb.ToString();
    }

    /// <summary>The node's epoch history as it is on disk (which epochs it led or followed, and where each began).</summary>
    private static string ReadNodeState(PairNodeProcess node)
    {
        try
        {
            return File.ReadAllText(Path.Combine(node.DataDirectory, "replication", "node.state")).ReplaceLineEndings(" | ");
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return $"unreadable: {e.Message}";
        }
    }

    /// <inheritdoc />
    public ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
        {
            return ValueTask.CompletedTask;
        }

        KillAll();
        foreach (var p in new[] { A.Process, B.Process, _witness })
        {
            p?.Dispose();
        }

        foreach (var s in _signals)
        {
            s.Dispose();
        }

        AppDomain.CurrentDomain.ProcessExit -= _onExit;
        DeleteData();
        return ValueTask.CompletedTask;
    }

    private async Task WaitForWitnessAsync(TimeSpan timeout, CancellationToken cancellationToken)
    {
        var deadline = Stopwatch.GetTimestamp() + (long)(timeout.TotalSeconds * Stopwatch.Frequency);
        while (true)
        {
            using (var probe = new Socket(SocketType.Stream, ProtocolType.Tcp))
            {
                try
                {
                    await probe.ConnectAsync(IPAddress.Loopback, _witnessPort, cancellationToken).ConfigureAwait(false);
                    return;
                }
                catch (SocketException)
                {
                }
            }

            if (_witness!.HasExited || Stopwatch.GetTimestamp() > deadline)
            {
                throw new TimeoutException($"the witness did not listen on 127.0.0.1:{_witnessPort} within {timeout.TotalSeconds:0} s");
            }

            await Task.Delay(20, cancellationToken).ConfigureAwait(false);
        }
    }

    private void StartNode(PairNodeProcess node)
    {
        var peer = Other(node);
        string[] args =
        [
            "serve", "--data", node.DataDirectory, "--host", "127.0.0.1", "--port", Port(node.ClientPort), "--admin-port", Port(node.AdminPort),
            "--replication-port", Port(node.ReplicationPort), "--peer", $"127.0.0.1:{Port(peer.ReplicationPort)}", "--node-id", node.Name,
            "--witness", $"127.0.0.1:{Port(_witnessPort)}", "--heartbeat-timeout-ms", Port(_heartbeatTimeoutMs),
        ];
        node.Process = PairProcess.Start(_executable, node.Name, [.. args, .. _nodeArguments]);
    }

    /// <summary>
    /// Ctrl-C, SIGTERM or SIGQUIT while the pair runs: kill the children and delete their data, then exit with the
    /// shell's status for the signal (128 + its number). The handler cancels the runtime's default action and exits
    /// itself so that the process cannot end before the children are dead. ProcessExit covers an exit that skipped
    /// dispose.
    /// </summary>
    private void KillChildrenOnExit()
    {
        foreach (var (signal, status) in new[] { (PosixSignal.SIGINT, 130), (PosixSignal.SIGTERM, 143), (PosixSignal.SIGQUIT, 131) })
        {
            try
            {
                _signals.Add(PosixSignalRegistration.Create(signal, ctx =>
                {
                    ctx.Cancel = true;
                    _interrupted = true;
                    KillAllAndDeleteData();
                    Environment.Exit(status);
                }));
            }
            catch (PlatformNotSupportedException)
            {
            }
        }

        AppDomain.CurrentDomain.ProcessExit += _onExit;
    }

    private void KillAllAndDeleteData()
    {
        KillAll();
        DeleteData();
    }

    private void DeleteData()
    {
        // Serialised: on Ctrl-C the signal handler and the unwinding benchmark (dispose) both get here, and two
        // concurrent recursive deletes make each other fail half-way.
        lock (_deleteGate)
        {
            try
            {
                if (Directory.Exists(_directory))
                {
                    Directory.Delete(_directory, recursive: true);
                }
            }
            catch (IOException)
            {
            }
            catch (UnauthorizedAccessException)
            {
            }
        }
    }

    private void KillAll()
    {
        foreach (var p in new[] { A.Process, B.Process, _witness })
        {
            p?.Kill();
        }
    }

    /// <summary>
    /// Distinct free loopback ports, all bound at once before any is released (so two of them cannot be the same), taken
    /// below the kernel's ephemeral range (<c>ip_local_port_range</c>) when there is room: the children bind them a
    /// moment later, and a port from a bind to port 0 lies in the ephemeral range, where any outgoing connection on the
    /// machine may draw it as its source port in between (seen under CI: a node exited with "cannot listen on admin
    /// port …: Address already in use" while another test process was connecting). Only an explicit bind can take a port
    /// below the range.
    /// </summary>
    internal static int[] FreePorts(int count)
    {
        var listeners = new List<TcpListener>(count);
        try
        {
            var (low, high) = PortsBelowEphemeral();
            for (var attempt = 0; listeners.Count < count && high - low > 1000 && attempt < 200; attempt++)
            {
                var l = new TcpListener(IPAddress.Loopback, Random.Shared.Next(low, high));
                try
                {
                    l.Start();
                    listeners.Add(l);
                }
                catch (SocketException)
                {
                    // Taken: draw another.
                }
            }

            while (listeners.Count < count)
            {
                var l = new TcpListener(IPAddress.Loopback, 0);
                l.Start();
                listeners.Add(l);
            }

            return [.. listeners.Select(l => ((IPEndPoint)l.LocalEndpoint).Port)];
        }
        finally
        {
            foreach (var l in listeners)
            {
                l.Stop();
            }
        }
    }

    /// <summary>[10000, the ephemeral range's first port), or an empty range when it cannot be read.</summary>
    private static (int Low, int High) PortsBelowEphemeral()
    {
        try
        {
            var fields = File.ReadAllText("/proc/sys/net/ipv4/ip_local_port_range").Split((char[])['\t', ' ', '\n'], StringSplitOptions.RemoveEmptyEntries);
            return (10_000, int.Parse(fields[0], CultureInfo.InvariantCulture));
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or FormatException or IndexOutOfRangeException)
        {
            return (0, 0);
        }
    }

    private static string Port(int port) => port.ToString(CultureInfo.InvariantCulture);
}
