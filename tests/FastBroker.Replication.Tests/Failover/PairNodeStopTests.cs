using System.Diagnostics;
using System.Globalization;
using FastBroker.Testing;

namespace FastBroker.ReplicationTests.Failover;

/// <summary>
/// A node of a failover pair (<c>serve --peer</c>) stopped by SIGTERM says so on stderr as a lone <c>serve</c> does
/// (docs/cli.md: "fastbroker: stopped" unless <c>--quiet</c>) and exits 0. Before, it exited 0 without a word, and a
/// script waiting for the line never saw it.
/// </summary>
[Collection(nameof(FailoverCollection))]
public class PairNodeStopTests
{
    [Fact]
    public async Task Sigterm_stops_a_pair_node_with_the_lone_serves_lines_and_exit_0()
    {
        using var dir = new TempDirectory("fastbroker-cli-pair-stop");
        string[] args =
        [
            "serve", "--data", dir.Path, "--port", FreePort.Next().ToString(CultureInfo.InvariantCulture), "--admin-port", "-1",
            "--replication-port", FreePort.Next().ToString(CultureInfo.InvariantCulture), "--peer", Cli.Address(FreePort.Next()),
            "--node-id", "a", "--role", "primary",
        ];
        using var node = await Cli.StartAsync("fastbroker node '", args);
        using (var kill = Process.Start(new ProcessStartInfo("kill", ["-TERM", node.Id.ToString(CultureInfo.InvariantCulture)]))!)
        {
            await kill.WaitForExitAsync();
            Assert.Equal(0, kill.ExitCode);
        }

        await Eventually.TrueAsync(() => node.HasExited, "the node ends after SIGTERM");
        node.WaitForExit(TimeSpan.FromSeconds(10)); // drains the output readers
        Assert.True(
            node.ExitCode == 0 && node.Errors.Contains("fastbroker: shutting down", StringComparison.Ordinal) && node.Errors.Contains("fastbroker: stopped", StringComparison.Ordinal),
            $"serve --peer, SIGTERM: exit {node.ExitCode} (expected 0, after 'fastbroker: shutting down' and 'fastbroker: stopped'), stderr: {node.Errors}");
    }
}
