using System.Globalization;

namespace FastBroker.Bench.Pair;

/// <summary>One node of a <see cref="LocalPair"/>: its name, fixed ports and data directory, and its current process.</summary>
internal sealed class PairNodeProcess(string name, int clientPort, int adminPort, int replicationPort, string dataDirectory)
{
    /// <summary>"a" or "b" (the node id).</summary>
    public string Name { get; } = name;

    /// <summary>Client protocol port (listened on only while primary).</summary>
    public int ClientPort { get; } = clientPort;

    /// <summary>Admin HTTP port (<c>/status</c>).</summary>
    public int AdminPort { get; } = adminPort;

    /// <summary>Replication link port.</summary>
    public int ReplicationPort { get; } = replicationPort;

    /// <summary>The node's data directory (kept across restarts).</summary>
    public string DataDirectory { get; } = dataDirectory;

    /// <summary><c>127.0.0.1:client port</c>.</summary>
    public string ClientEndpoint => string.Create(CultureInfo.InvariantCulture, $"127.0.0.1:{ClientPort}");

    /// <summary><c>127.0.0.1:admin port</c>.</summary>
    public string AdminEndpoint => string.Create(CultureInfo.InvariantCulture, $"127.0.0.1:{AdminPort}");

    /// <summary>The running (or killed) process; replaced on restart.</summary>
    public PairProcess? Process { get; set; }
}
