using FastBroker.Testing;

namespace FastBroker.ReplicationTests.Failover;

/// <summary>
/// <c>fastbroker serve --peer …</c> refuses pair settings the node could not run with as a usage error (exit 64, the
/// option, its value, the range and why on stderr) instead of starting a node that fails at every attempt.
/// </summary>
public class ServePairLimitsTests
{
    /// <summary>
    /// With <c>--witness</c>, the lease lasts twice the heartbeat timeout and the witness grants at most 60 s: serve
    /// with <c>--heartbeat-timeout-ms 40000</c> started, stayed Starting and logged "unexpected
    /// ArgumentOutOfRangeException … A lease TTL is 50..60000 ms" every heartbeat. A timeout no longer than the heartbeat
    /// interval is refused in the option's terms too. 30000 starts.
    /// </summary>
    [Fact]
    public async Task A_heartbeat_timeout_the_witness_lease_cannot_follow_exits_64()
    {
        using var dir = new TempDirectory("fastbroker-cli-pair-limits");
        await using var witness = await WitnessFixture.StartAsync();
        string[] pair = ["serve", "--data", dir.Combine("a"), "--port", "0", "--admin-port", "-1", "--peer", "127.0.0.1:1", "--replication-port", "0", "--peer-wait-ms", "0"];
        (string[] Args, string Reason)[] cases =
        [
            ([.. pair, "--witness", witness.Endpoint, "--heartbeat-timeout-ms", "40000"],
                "--heartbeat-timeout-ms 40000: expected at most 30000 with --witness (the witness lease lasts twice the heartbeat timeout, and the witness grants a lease of at most 60000 ms)"),
            ([.. pair, "--witness", witness.Endpoint, "--heartbeat-timeout-ms", "100"],
                "--heartbeat-timeout-ms 100: expected more than 100 (the primary sends a heartbeat every 100 ms)"),
        ];
        var failures = new List<string>();
        foreach (var (args, reason) in cases)
        {
            var outcome = await CliOutcome.RunAsync(args, TimeSpan.FromSeconds(30));
            if (outcome.ExitCode != 64 || outcome.HasStackTrace || outcome.Output.Length > 0 || !outcome.Errors.Contains(reason, StringComparison.Ordinal))
            {
                failures.Add($"expected exit 64, nothing on stdout and \"{reason}\" on stderr: {outcome.Describe(args)}, stdout: [{outcome.Output}]");
            }
        }

        Assert.True(failures.Count == 0, string.Join("\n---\n", failures));
        Assert.False(Directory.Exists(dir.Combine("a")), "a refused serve creates no data directory");

        // The longest accepted: a 60 s lease, which this witness grants as its 10 s MaxTtl. And the default (500 ms),
        // which a check of a value not given must not take for 0.
        using var node = await Cli.StartAsync("fastbroker node", [.. pair, "--witness", witness.Endpoint, "--heartbeat-timeout-ms", "30000", "--node-id", "a"]);
        await using var other = await WitnessFixture.StartAsync();
        using var byDefault = await Cli.StartAsync("fastbroker node", [.. pair[..2], dir.Combine("d"), .. pair[3..], "--witness", other.Endpoint, "--node-id", "d"]);
        await Eventually.TrueAsync(() => witness.Server.Holder == "a" && other.Server.Holder == "d", "both nodes take their witness's lease");
        Assert.DoesNotContain("Exception", node.Errors + byDefault.Errors, StringComparison.Ordinal);
    }
}
