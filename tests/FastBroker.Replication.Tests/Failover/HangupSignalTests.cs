using System.Diagnostics;
using System.Globalization;
using FastBroker.Testing;

namespace FastBroker.ReplicationTests.Failover;

/// <summary>
/// SIGHUP (the terminal a command runs in hung up: an ssh session that ended, a closed terminal window) stops
/// <c>serve</c> and <c>sub</c> as SIGTERM does: <c>serve</c> drains, flushes and closes its journals and exits 0, a
/// durable <c>sub</c> commits what it printed. Before, SIGHUP's default action ended them at once (exit 129): no
/// drain, no "stopped", no commit. Under <c>nohup</c> (SIGHUP ignored from the start) it stays ignored.
/// </summary>
[Collection(nameof(FailoverCollection))]
public class HangupSignalTests
{
    [Fact]
    public async Task Sighup_stops_serve_and_sub_as_sigterm_does()
    {
        using var dir = new TempDirectory("fastbroker-cli-sighup");
        var port = FreePort.Next();
        var server = Cli.Address(port);
        var failures = new List<string>();
        using (var serve = await Cli.ServeAsync(dir.Path, port))
        {
            await Cli.RunAsync("pub", "orders", "o1", "o2", "--server", server);
            using (var durable = ChildProcess.StartDotnet(Cli.DllPath, "sub", "orders", "--durable", "d1", "--from", "earliest", "--commit-interval", "3600", "--server", server))
            {
                await Eventually.TrueAsync(() => durable.LineCount >= 2 || durable.HasExited, "the durable subscription prints the 2 orders");
                var exit = await HangUpAsync(durable);
                if (exit != 0)
                {
                    failures.Add($"sub --durable, SIGHUP: exit {exit} (expected 0), stderr: {durable.Errors}");
                }
            }

            await Cli.RunAsync("pub", "orders", "o3", "--server", server);
            string[] resume = ["sub", "orders", "--durable", "d1", "--from", "committed", "--count", "1", "--timeout", "60", "--server", server];
            var resumed = await CliOutcome.RunAsync(resume);
            if (resumed.ExitCode != 0 || resumed.Output != "o3")
            {
                failures.Add($"sub --durable --from committed after SIGHUP: {resumed.Describe(resume)}, printed [{resumed.Output}] (expected o3: the commit at exit)");
            }

            var serveExit = await HangUpAsync(serve);
            if (serveExit != 0 || !serve.Errors.Contains("fastbroker: stopped", StringComparison.Ordinal))
            {
                failures.Add($"serve, SIGHUP: exit {serveExit} (expected 0, after 'fastbroker: stopped'), stderr: {serve.Errors}");
            }
        }

        Assert.True(failures.Count == 0, string.Join("\n", failures));
    }

    /// <summary>Sends SIGHUP and returns the exit code, or <see cref="CliOutcome.StillRunning"/> if it does not end.</summary>
    private static async Task<int> HangUpAsync(ChildProcess child)
    {
        if (!child.HasExited)
        {
            using var kill = Process.Start(new ProcessStartInfo("kill", ["-HUP", child.Id.ToString(CultureInfo.InvariantCulture)]))!;
            await kill.WaitForExitAsync();
            Assert.Equal(0, kill.ExitCode);
        }

        try
        {
            await Eventually.TrueAsync(() => child.HasExited, "the command ends after SIGHUP");
        }
        catch (TimeoutException)
        {
            return CliOutcome.StillRunning;
        }

        child.WaitForExit(TimeSpan.FromSeconds(10)); // drains the output readers
        return child.ExitCode;
    }
}
