using FastBroker.Replication;
using FastBroker.Testing;

namespace FastBroker.ReplicationTests.Failover;

/// <summary>
/// The standby-log tests' pair: two in-process nodes, no witness, a 30 s heartbeat (so nothing but a test's own
/// requests sends a state file whole), every log line of both nodes kept, and a log clock the test may move by hand.
/// </summary>
internal static class LoggedPair
{
    public static readonly TimeSpan Interval = TimeSpan.FromSeconds(30);

    /// <summary>
    /// Starts the pair and returns once the standby's attach is over (a state version requested now acknowledged): a
    /// state file the test makes afterwards is not listed by the attach while it is being created (read half made, a
    /// position file of zeros, its copy would be logged as holding no state).
    /// </summary>
    public static async Task<(ReplicatedNode Primary, ReplicatedNode Standby)> StartAsync(TempDirectory dir, List<string> log, TimeProvider? clock = null)
    {
        var (a, b) = await InProcessPair.StartAsync(dir, BrokerOptions.Default, o => o with
        {
            LogClock = clock ?? TimeProvider.System,
            HeartbeatInterval = Interval,
            HeartbeatTimeout = Interval * 2,
            Log = line =>
            {
                lock (log)
                {
                    log.Add(line);
                }
            },
        });
        try
        {
            var gate = a.Broker!.Replication!;
            var version = gate.RequestStateFiles();
            await Eventually.TrueAsync(() => gate.StateApplied >= version, $"b attaches and acknowledges state version {version}", Interval);
            return (a, b);
        }
        catch
        {
            await b.DisposeAsync();
            await a.DisposeAsync();
            throw;
        }
    }

    /// <summary>The "link down" lines of <paramref name="log"/>: a damaged or replaced copy must not end the link.</summary>
    public static List<string> LinkDowns(List<string> log)
    {
        lock (log)
        {
            return [.. log.Where(l => l.Contains("link down", StringComparison.Ordinal))];
        }
    }

    /// <summary>Writes <paramref name="bytes"/> over the start of the file, in place (its mapping stays open), and syncs it.</summary>
    public static void Overwrite(string path, ReadOnlySpan<byte> bytes)
    {
        using var f = new FileStream(path, FileMode.Open, FileAccess.Write, FileShare.ReadWrite | FileShare.Delete);
        f.Write(bytes);
        f.Flush(flushToDisk: true);
    }
}
