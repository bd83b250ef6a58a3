using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using FastBroker.Testing;

namespace FastBroker.ReplicationTests.Failover;

/// <summary>
/// Ctrl-C (SIGINT) ends <c>fastbroker sub</c> and <c>pub</c> cleanly with exit 0 instead of killing them: a group member
/// leaves the group (UNSUBSCRIBE, its ACKs sent first), a durable subscription commits what it printed, and
/// <c>pub</c> reading standard input stops reading and reports the confirmations of what it sent.
/// </summary>
[Collection(nameof(FailoverCollection))]
public class ClientCommandSignalTests
{
    [Fact]
    public async Task Sigint_ends_sub_and_pub_cleanly_with_exit_0()
    {
        using var dir = new TempDirectory("fastbroker-cli-sigint");
        var port = FreePort.Next();
        var server = Cli.Address(port);
        using var serve = await Cli.ServeAsync(dir.Path, port);
        var failures = new List<string>();

        // A work-queue member: leaves the group, and every message it printed is acked (none goes back to the queue).
        await Cli.RunAsync("pub", "jobs", "j1", "j2", "j3", "j4", "j5", "--server", server);
        using (var member = ChildProcess.StartDotnet(Cli.DllPath, "sub", "jobs", "--group", "workers", "--server", server))
        {
            await Eventually.TrueAsync(() => member.LineCount >= 5 || member.HasExited, "the member prints the 5 jobs");
            var exit = await InterruptAsync(member);
            if (exit != 0)
            {
                failures.Add($"sub --group: exit {exit}, stderr: {member.Errors}");
            }
        }

        var group = await GroupAsync(server, "jobs", "workers");
        if (group.Members != 0 || group.Acked != 5 || group.InFlight != 0 || group.Ready != 0)
        {
            failures.Add($"sub --group after SIGINT: members {group.Members}, acked {group.Acked}, in flight {group.InFlight}, ready {group.Ready} (expected 0, 5, 0, 0)");
        }

        // A durable subscription: commits what it printed, so --from committed resumes after it.
        await Cli.RunAsync("pub", "orders", "o1", "o2", "o3", "--server", server);
        using (var durable = ChildProcess.StartDotnet(Cli.DllPath, "sub", "orders", "--durable", "d1", "--from", "earliest", "--server", server))
        {
            await Eventually.TrueAsync(() => durable.LineCount >= 3 || durable.HasExited, "the durable subscription prints the 3 orders");
            var exit = await InterruptAsync(durable);
            if (exit != 0)
            {
                failures.Add($"sub --durable: exit {exit}, stderr: {durable.Errors}");
            }
        }

        await Cli.RunAsync("pub", "orders", "o4", "o5", "--server", server);
        var resumed = await CliOutcome.RunAsync(["sub", "orders", "--durable", "d1", "--from", "committed", "--count", "2", "--timeout", "60", "--server", server]);
        if (resumed.ExitCode != 0 || resumed.Output != "o4\no5")
        {
            failures.Add($"sub --durable --from committed after SIGINT: exit {resumed.ExitCode}, printed [{resumed.Output.Replace('\n', ' ')}] (expected o4 o5)");
        }

        // pub reading standard input: each line is confirmed as it is read; SIGINT stops reading.
        using (var pub = ChildProcess.StartDotnet(Cli.DllPath, "pub", "lines", "--server", server))
        {
            try
            {
                pub.WriteLine("first");
                await Eventually.TrueAsync(() => pub.Lines.Contains("lines@0") || pub.HasExited, "pub confirms the first line before the input ends");
                pub.WriteLine("second");
                await Eventually.TrueAsync(() => pub.Lines.Contains("lines@1") || pub.HasExited, "pub confirms the second line before the input ends");
            }
            catch (TimeoutException ex)
            {
                failures.Add($"pub from stdin: {ex.Message}; printed [{string.Join(' ', pub.Lines)}]");
            }

            var exit = await InterruptAsync(pub);
            if (exit != 0)
            {
                failures.Add($"pub from stdin: exit {exit}, stderr: {pub.Errors}");
            }
        }

        Assert.True(failures.Count == 0, string.Join("\n", failures) + "\n--- serve ---\n" + serve.Errors);
    }

    /// <summary>Sends SIGINT (as Ctrl-C does) and returns the exit code, or <see cref="CliOutcome.StillRunning"/> if it does not end.</summary>
    private static async Task<int> InterruptAsync(ChildProcess child)
    {
        if (!child.HasExited)
        {
            using var kill = Process.Start(new ProcessStartInfo("kill", ["-INT", child.Id.ToString(CultureInfo.InvariantCulture)]))!;
            await kill.WaitForExitAsync();
            Assert.Equal(0, kill.ExitCode);
        }

        try
        {
            await Eventually.TrueAsync(() => child.HasExited, "the command ends after SIGINT");
        }
        catch (TimeoutException)
        {
            return CliOutcome.StillRunning;
        }

        child.WaitForExit(TimeSpan.FromSeconds(10)); // drains the output readers
        return child.ExitCode;
    }

    private static async Task<(long Members, long Acked, long InFlight, long Ready)> GroupAsync(string server, string topic, string name)
    {
        var json = string.Join('\n', await Cli.RunAsync("groups", topic, "--json", "--server", server));
        using var doc = JsonDocument.Parse(json);
        foreach (var g in doc.RootElement.GetProperty("groups").EnumerateArray())
        {
            if (g.GetProperty("group").GetString() == name)
            {
                return (g.GetProperty("members").GetInt64(), g.GetProperty("acked").GetInt64(), g.GetProperty("inFlight").GetInt64(), g.GetProperty("ready").GetInt64());
            }
        }

        throw new InvalidOperationException($"no group {name} in {json}");
    }
}
