using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using FastBroker.Testing;

namespace FastBroker.ReplicationTests.Failover;

/// <summary>
/// Ctrl-C (SIGINT) ends <c>fastbroker sub</c> cleanly with exit 0 instead of killing it: a group member leaves the
/// group (UNSUBSCRIBE, its ACKs sent first), a durable subscription commits what it printed; a <c>sub --count N</c>
/// stopped before N messages exits 130 or 143 (128 + the signal). SIGINT or SIGTERM stops
/// <c>pub</c> cleanly too (it prints the confirmations of what it sent), but a <c>pub</c> stopped before it sent all
/// it was asked to exits 130 or 143 (128 + the signal), never 0.
/// </summary>
[Collection(nameof(FailoverCollection))]
public class ClientCommandSignalTests
{
    [Fact]
    public async Task Sigint_ends_sub_cleanly_with_exit_0()
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

        Assert.True(failures.Count == 0, string.Join("\n", failures) + "\n--- serve ---\n" + serve.Errors);
    }

    /// <summary>
    /// A <c>pub</c> stopped by a signal before it has sent everything it was asked to (its standard input still open,
    /// copies of <c>--count</c> still to send) confirms and prints what it sent, then exits 130 for SIGINT and 143 for
    /// SIGTERM: it exited 0, as if it had published everything.
    /// </summary>
    [Fact]
    public async Task A_signal_before_pub_sent_everything_prints_what_it_sent_and_exits_128_plus_the_signal()
    {
        using var dir = new TempDirectory("fastbroker-cli-pub-signal");
        var port = FreePort.Next();
        var server = Cli.Address(port);
        using var serve = await Cli.ServeAsync(dir.Path, port);
        var failures = new List<string>();

        // Standard input not ended: each line is confirmed as it is read; SIGINT stops reading.
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

            var exit = await SignalAsync(pub, "INT");
            if (exit != 130 || string.Join(' ', pub.Lines) != "lines@0 lines@1" || !pub.Errors.Contains("SIGINT", StringComparison.Ordinal))
            {
                failures.Add($"pub from stdin, SIGINT: exit {exit} (expected 130), printed [{string.Join(' ', pub.Lines)}] (expected lines@0 lines@1), stderr: {pub.Errors}");
            }
        }

        // --count far beyond what can be sent before the signal (10^8 copies): SIGTERM stops it; every message it
        // stored is confirmed and printed first.
        using (var pub = ChildProcess.StartDotnet(Cli.DllPath, "pub", "counted", "x", "--count", "100000000", "--server", server))
        {
            await Eventually.TrueAsync(() => pub.LineCount > 0 || pub.HasExited, "pub confirms its first messages");
            var exit = await SignalAsync(pub, "TERM");
            var head = await HeadAsync(server, "counted");
            var printed = pub.LineCount;
            if (exit != 143 || printed != head || pub.Lines.Last() != $"counted@{head - 1}" || !pub.Errors.Contains("SIGTERM", StringComparison.Ordinal))
            {
                failures.Add($"pub --count, SIGTERM: exit {exit} (expected 143), printed {printed} confirmations, last {pub.Lines.LastOrDefault()}, the topic holds {head}; stderr: {pub.Errors}");
            }
        }

        Assert.True(failures.Count == 0, string.Join("\n", failures) + "\n--- serve ---\n" + serve.Errors);
    }

    /// <summary>
    /// A <c>sub --count N</c> stopped by a signal before it received N messages exits 130 for SIGINT and 143 for SIGTERM,
    /// as an interrupted <c>pub</c> does, after printing what it received and saying on stderr how many of N: it exited
    /// 0, as if it had received them all. A fan-out subscription and a group member alike.
    /// </summary>
    [Fact]
    public async Task A_signal_before_sub_received_its_count_exits_128_plus_the_signal()
    {
        using var dir = new TempDirectory("fastbroker-cli-sub-signal");
        var port = FreePort.Next();
        var server = Cli.Address(port);
        using var serve = await Cli.ServeAsync(dir.Path, port);
        var failures = new List<string>();
        await Cli.RunAsync("pub", "few", "m1", "m2", "--server", server);

        (string[] Args, string Signal, int Exit)[] cases =
        [
            (["sub", "few", "--from", "earliest", "--count", "5", "--server", server], "INT", 130),
            (["sub", "few", "--group", "workers", "--count", "5", "--server", server], "TERM", 143),
        ];
        foreach (var (args, signal, expected) in cases)
        {
            using var sub = ChildProcess.StartDotnet(Cli.DllPath, args);
            await Eventually.TrueAsync(() => sub.LineCount >= 2 || sub.HasExited, "sub prints the 2 messages");
            var exit = await SignalAsync(sub, signal);
            if (exit != expected || string.Join(' ', sub.Lines) != "m1 m2" || !sub.Errors.Contains("SIG" + signal, StringComparison.Ordinal))
            {
                failures.Add($"{string.Join(' ', args.SkipLast(2))}, SIG{signal}: exit {exit} (expected {expected}), printed [{string.Join(' ', sub.Lines)}] (expected m1 m2), stderr: {sub.Errors}");
            }
        }

        Assert.True(failures.Count == 0, string.Join("\n", failures) + "\n--- serve ---\n" + serve.Errors);
    }

    /// <summary>Sends SIGINT (as Ctrl-C does) and returns the exit code, or <see cref="CliOutcome.StillRunning"/> if it does not end.</summary>
    private static Task<int> InterruptAsync(ChildProcess child) => SignalAsync(child, "INT");

    /// <summary>Sends SIG<paramref name="signal"/> and returns the exit code, or <see cref="CliOutcome.StillRunning"/> if it does not end.</summary>
    private static async Task<int> SignalAsync(ChildProcess child, string signal)
    {
        if (!child.HasExited)
        {
            using var kill = Process.Start(new ProcessStartInfo("kill", ["-" + signal, child.Id.ToString(CultureInfo.InvariantCulture)]))!;
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

    private static async Task<long> HeadAsync(string server, string topic)
    {
        var json = string.Join('\n', await Cli.RunAsync("topics", topic, "--json", "--server", server));
        using var doc = JsonDocument.Parse(json);
        foreach (var t in doc.RootElement.GetProperty("topics").EnumerateArray())
        {
            if (t.GetProperty("name").GetString() == topic)
            {
                return t.GetProperty("head").GetInt64();
            }
        }

        throw new InvalidOperationException($"no topic {topic} in {json}");
    }

    private static async Task<(long Members, long Acked, long InFlight, long Ready)> GroupAsync(string server, string topic, string name)
    {
        var g = await Cli.GroupAsync(server, topic, name);
        return (g.GetProperty("members").GetInt64(), g.GetProperty("acked").GetInt64(), g.GetProperty("inFlight").GetInt64(), g.GetProperty("ready").GetInt64());
    }
}
