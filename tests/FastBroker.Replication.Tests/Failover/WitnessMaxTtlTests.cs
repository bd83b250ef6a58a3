using System.Globalization;
using FastBroker.Replication;
using FastBroker.Testing;

namespace FastBroker.ReplicationTests.Failover;

/// <summary>
/// <c>fastbroker witness --max-ttl-ms</c> takes the protocol's lease range, 50 to 60000 ms, and refuses anything else as a
/// usage error (exit 64, the flag, its value and range on stderr) before it opens its data directory: a restarted witness
/// keeps the lease for its recorded holder for its whole maximum TTL, so a maximum of an hour held up every failover
/// after a witness restart for an hour, while no lease was ever granted for more than 60 s.
/// </summary>
public class WitnessMaxTtlTests
{
    [Fact]
    public async Task A_witness_max_ttl_outside_the_protocol_range_exits_64_and_the_edges_start()
    {
        using var dir = new TempDirectory("fastbroker-cli-witness-max-ttl");
        var failures = new List<string>();
        foreach (var value in new[] { "3600000", "60001", "49", "0" })
        {
            string[] args = ["witness", "--port", "0", "--data", dir.Combine("w"), "--max-ttl-ms", value];
            var outcome = await CliOutcome.RunAsync(args, TimeSpan.FromSeconds(30));
            var reason = $"--max-ttl-ms {value}: expected 50 to 60000 (a lease lasts at most 60000 ms, and a restarted witness keeps the lease for its last holder --max-ttl-ms before any failover)";
            if (outcome.ExitCode != 64 || outcome.HasStackTrace || outcome.Output.Length > 0 || !outcome.Errors.Contains(reason, StringComparison.Ordinal))
            {
                failures.Add($"expected exit 64, nothing on stdout and \"{reason}\" on stderr: {outcome.Describe(args)}, stdout: [{outcome.Output}]");
            }
        }

        Assert.True(failures.Count == 0, string.Join("\n---\n", failures));
        Assert.False(Directory.Exists(dir.Combine("w")), "a refused witness creates no data directory");

        // The edges start, and grant what they say: a 60 s lease asked is granted 60 s by --max-ttl-ms 60000, 50 ms
        // by --max-ttl-ms 50.
        foreach (var maxTtlMs in new[] { 60_000, 50 })
        {
            var port = FreePort.Next();
            using var witness = await Cli.StartAsync("witness listening on", ["witness", "--port", port.ToString(CultureInfo.InvariantCulture), "--data", dir.Combine($"w{maxTtlMs}"), "--max-ttl-ms", maxTtlMs.ToString(CultureInfo.InvariantCulture)]);
            await using var client = new WitnessClient(Cli.Address(port));
            var granted = await client.AcquireAsync("a", 0, TimeSpan.FromSeconds(60));
            Assert.True(granted.IsGranted, $"--max-ttl-ms {maxTtlMs}: {granted}");
            Assert.Equal(TimeSpan.FromMilliseconds(maxTtlMs), granted.Ttl);
        }
    }
}
