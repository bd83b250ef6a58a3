using System.Diagnostics;
using System.Globalization;
using FastBroker.Bench.Pair;

namespace FastBroker.Compare.Servers;

/// <summary>
/// How each competitor's server is found and started: on a free 127.0.0.1 port with its data in a new temp
/// directory, durability as the comparison needs it (README.md, "Durability").
/// </summary>
internal static class Competitors
{
    /// <summary>What to run to install the servers on a fresh machine.</summary>
    public const string InstallHint = "run tools/install-competitors.sh";

    /// <summary>The redis-server binary, or null when not installed.</summary>
    public static string? RedisBinary => FindBinary("redis-server", "/usr/bin", "/usr/local/bin", "/usr/sbin");

    /// <summary>The nats-server binary, or null when not installed.</summary>
    public static string? NatsBinary => FindBinary("nats-server", "/usr/sbin", "/usr/bin", "/usr/local/bin");

    /// <summary>
    /// RabbitMQ's own start script (not <c>/usr/sbin/rabbitmq-server</c>, which drops to the rabbitmq user and then
    /// cannot write a root-owned temp directory), or null when not installed.
    /// </summary>
    public static string? RabbitMqBinary => File.Exists("/usr/lib/rabbitmq/bin/rabbitmq-server") ? "/usr/lib/rabbitmq/bin/rabbitmq-server" : null;

    /// <summary>The binary a system needs, by system name.</summary>
    public static (string Binary, string? Path) BinaryOf(string system) => system switch
    {
        "redis" => ("redis-server", RedisBinary),
        "nats" => ("nats-server", NatsBinary),
        "rabbitmq" => ("rabbitmq-server", RabbitMqBinary),
        _ => throw new ArgumentException($"unknown system '{system}'", nameof(system)),
    };

    /// <summary>"redis-server not installed: run tools/install-competitors.sh".</summary>
    public static string NotInstalled(string binary) => $"{binary} not installed: {InstallHint}";

    /// <summary>
    /// redis-server with AOF on and fsync left to the kernel (<c>--appendonly yes --appendfsync no</c>: each event
    /// loop writes the AOF into the page cache, which survives a kill -9 of the server) and no RDB snapshots.
    /// </summary>
    public static Task<ServerProcess> StartRedisAsync(string? workDirectory, CancellationToken cancellationToken = default)
    {
        var binary = RedisBinary ?? throw new InvalidOperationException(NotInstalled("redis-server"));
        var dir = NewDirectory(workDirectory, "redis");
        var port = FreePort();
        string[] args =
        [
            "--port", Port(port), "--bind", "127.0.0.1", "--protected-mode", "no", "--dir", dir, "--daemonize", "no",
            "--appendonly", "yes", "--appendfsync", "no", "--save", "", "--logfile", "",
        ];
        return ServerProcess.StartAsync("redis", binary, args, new Dictionary<string, string>(), dir, port, TimeSpan.FromSeconds(30), cancellationToken: cancellationToken);
    }

    /// <summary>
    /// nats-server with JetStream on file storage in the temp directory (default sync: the page cache), and a larger
    /// per-connection buffer (<c>max_pending</c> 1 GiB, default 64 MiB) so that a core fan-out subscriber that
    /// falls behind is buffered rather than cut off as a slow consumer.
    /// </summary>
    public static Task<ServerProcess> StartNatsAsync(string? workDirectory, CancellationToken cancellationToken = default)
    {
        var binary = NatsBinary ?? throw new InvalidOperationException(NotInstalled("nats-server"));
        var dir = NewDirectory(workDirectory, "nats");
        var port = FreePort();
        var config = Path.Combine(dir, "nats.conf");
        File.WriteAllText(config, $$"""
            listen: "127.0.0.1:{{Port(port)}}"
            max_pending: 1073741824
            write_deadline: "60s"
            jetstream {
              store_dir: "{{Path.Combine(dir, "jetstream")}}"
            }
            """);
        return ServerProcess.StartAsync("nats", binary, ["-c", config], new Dictionary<string, string>(), dir, port, TimeSpan.FromSeconds(30), cancellationToken: cancellationToken);
    }

    /// <summary>
    /// RabbitMQ as a child process: its start script directly, as root, everything (mnesia, logs, config, cookie)
    /// in the temp directory, no plugins, guest allowed from loopback. Its epmd gets a port of its own
    /// (<c>ERL_EPMD_PORT</c>), so the epmd daemon erl starts is always this tool's: stopped with <c>epmd -kill</c>
    /// after the node is killed. The node name carries this process's pid: after the tree kill, any process whose
    /// command line holds it (beam.smp, forked while the tree was walked) is killed too.
    /// </summary>
    public static Task<ServerProcess> StartRabbitMqAsync(string? workDirectory, CancellationToken cancellationToken = default)
    {
        var binary = RabbitMqBinary ?? throw new InvalidOperationException(NotInstalled("rabbitmq-server"));
        var dir = NewDirectory(workDirectory, "rabbitmq");
        var ports = FreePorts(3);
        File.WriteAllText(Path.Combine(dir, "enabled_plugins"), "[].\n");
        File.WriteAllText(Path.Combine(dir, "rabbitmq.conf"), "loopback_users = none\n");
        var node = $"fbcompare{Environment.ProcessId}x{ports[0]}@localhost";
        var env = new Dictionary<string, string>
        {
            ["RABBITMQ_MNESIA_BASE"] = Path.Combine(dir, "mnesia"),
            ["RABBITMQ_LOG_BASE"] = Path.Combine(dir, "log"),
            ["RABBITMQ_NODENAME"] = node,
            ["RABBITMQ_NODE_PORT"] = Port(ports[0]),
            ["RABBITMQ_DIST_PORT"] = Port(ports[1]),
            ["ERL_EPMD_PORT"] = Port(ports[2]),
            ["RABBITMQ_ENABLED_PLUGINS_FILE"] = Path.Combine(dir, "enabled_plugins"),
            ["RABBITMQ_CONFIG_FILE"] = Path.Combine(dir, "rabbitmq"),
            ["HOME"] = dir,
        };
        var epmdPort = ports[2];
        return ServerProcess.StartAsync("rabbitmq", binary, [], env, dir, ports[0], TimeSpan.FromSeconds(120), () => StopEpmd(epmdPort), node, cancellationToken);
    }

    /// <summary>
    /// Asks the epmd on <paramref name="port"/> (started by this tool's RabbitMQ node, the only user of that port) to
    /// exit; allowed once no node is registered, which holds after the node was killed.
    /// </summary>
    private static void StopEpmd(int port)
    {
        var epmd = FindBinary("epmd", "/usr/bin", "/usr/lib/erlang/bin", "/usr/local/bin");
        if (epmd is null)
        {
            return;
        }

        var psi = new ProcessStartInfo(epmd) { UseShellExecute = false, RedirectStandardOutput = true, RedirectStandardError = true };
        psi.ArgumentList.Add("-port");
        psi.ArgumentList.Add(Port(port));
        psi.ArgumentList.Add("-kill");
        try
        {
            using var p = Process.Start(psi);
            if (p is not null && !p.WaitForExit(10_000))
            {
                p.Kill();
            }
        }
        catch (System.ComponentModel.Win32Exception)
        {
        }
    }

    /// <summary>The first executable file named <paramref name="name"/> on PATH or in <paramref name="extra"/>.</summary>
    internal static string? FindBinary(string name, params string[] extra)
    {
        var path = (Environment.GetEnvironmentVariable("PATH") ?? "").Split(':', StringSplitOptions.RemoveEmptyEntries);
        foreach (var dir in path.Concat(extra))
        {
            var candidate = Path.Combine(dir, name);
            if (File.Exists(candidate))
            {
                return candidate;
            }
        }

        return null;
    }

    /// <summary>fastbroker-compare-&lt;system&gt;-&lt;this pid&gt;-&lt;guid&gt; (<see cref="Orphans"/> reaps it once this pid is gone).</summary>
    private static string NewDirectory(string? workDirectory, string system) => Orphans.NewDirectory(workDirectory, system);

    private static int FreePort() => FreePorts(1)[0];

    /// <summary>Distinct free loopback ports drawn below the kernel's ephemeral range, as the failover pair's (<see cref="LocalPair.FreePorts"/>).</summary>
    private static int[] FreePorts(int count) => LocalPair.FreePorts(count);

    private static string Port(int port) => port.ToString(CultureInfo.InvariantCulture);
}
