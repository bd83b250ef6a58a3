using System.Diagnostics;
using System.Globalization;
using FastBroker.Replication;
using FastBroker.Testing;

namespace FastBroker.ReplicationTests.Failover;

/// <summary>
/// <c>fastbroker witness --safety-margin-ms</c> sets how long an expired lease stays reserved for its holder
/// (<see cref="WitnessOptions.SafetyMargin"/>), 0 to 2147423647 ms, and refuses anything else as a usage error (exit 64,
/// the flag, its value and range on stderr) before it opens its data directory, as <c>--max-ttl-ms</c> does. A denial
/// states the holder's remaining lease plus the margin, so the margin given is the one a denied node is told.
/// </summary>
public class WitnessSafetyMarginTests
{
    [Fact]
    public async Task A_witness_safety_margin_outside_its_range_exits_64_and_the_edges_start_and_deny_with_it()
    {
        using var dir = new TempDirectory("fastbroker-cli-witness-margin");
        var failures = new List<string>();
        foreach (var value in new[] { "-1", "2147423648", "2147483647" })
        {
            string[] args = ["witness", "--port", "0", "--data", dir.Combine("w"), "--safety-margin-ms", value];
            var outcome = await CliOutcome.RunAsync(args, TimeSpan.FromSeconds(30));
            var reason = $"--safety-margin-ms {value}: expected 0 to 2147423647 (a denial states the holder's remaining lease plus the margin, at most 2147483647 ms after a lease of up to 60000 ms)";
            if (outcome.ExitCode != 64 || outcome.HasStackTrace || outcome.Output.Length > 0 || !outcome.Errors.Contains(reason, StringComparison.Ordinal))
            {
                failures.Add($"expected exit 64, nothing on stdout and \"{reason}\" on stderr: {outcome.Describe(args)}, stdout: [{outcome.Output}]");
            }
        }

        Assert.True(failures.Count == 0, string.Join("\n---\n", failures));
        Assert.False(Directory.Exists(dir.Combine("w")), "a refused witness creates no data directory");

        // The edges start, and a node denied the lease held by 'a' is told the margin on top of what is left of it. The
        // lease is 60 s (the longest a witness grants, allowed with --max-ttl-ms): a 10 s one could run out before the
        // denial on a loaded machine, and 'b' would be granted it. What is left is at most the lease, and at least the
        // lease less the time since the grant was asked for.
        foreach (var marginMs in new[] { 0, 2_147_423_647 })
        {
            var port = FreePort.Next();
            using var witness = await Cli.StartAsync("witness listening on", ["witness", "--port", port.ToString(CultureInfo.InvariantCulture), "--data", dir.Combine($"w{marginMs}"), "--max-ttl-ms", "60000", "--safety-margin-ms", marginMs.ToString(CultureInfo.InvariantCulture)]);
            await using var client = new WitnessClient(Cli.Address(port));
            var lease = TimeSpan.FromSeconds(60);
            var sinceAsked = Stopwatch.StartNew();
            var granted = await client.AcquireAsync("a", 0, lease);
            Assert.True(granted.IsGranted, $"--safety-margin-ms {marginMs}: {granted}");
            var denied = await client.AcquireAsync("b", 0, lease);
            var elapsed = sinceAsked.Elapsed;
            Assert.True(denied.Kind == LeaseResultKind.Denied, $"--safety-margin-ms {marginMs}: {denied}");
            Assert.InRange(denied.Remaining, TimeSpan.FromMilliseconds(marginMs) + lease - elapsed, TimeSpan.FromMilliseconds(marginMs) + lease);
        }
    }
}
