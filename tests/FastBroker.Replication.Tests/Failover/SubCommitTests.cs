using FastBroker.Testing;

namespace FastBroker.ReplicationTests.Failover;

/// <summary>
/// <c>fastbroker sub --durable</c> commits what it printed while it runs, not only when it ends, so a kill -9 loses at
/// most the last interval's progress.
/// </summary>
[Collection(nameof(FailoverCollection))]
public class SubCommitTests
{
    [Fact]
    public async Task A_durable_sub_killed_with_sigkill_resumes_after_what_it_committed_while_running()
    {
        using var dir = new TempDirectory("fastbroker-cli-subcommit");
        var port = FreePort.Next();
        var server = Cli.Address(port);
        using var serve = await Cli.ServeAsync(dir.Path, port);
        await Cli.RunAsync("pub", "orders", "o1", "o2", "o3", "--server", server);

        // --commit-interval 0 commits after each message, and awaits it before reading the next: once o3 is printed,
        // o2 is committed. Before, nothing was committed until sub ended, and a kill -9 lost it all.
        using (var sub = ChildProcess.StartDotnet(Cli.DllPath, "sub", "orders", "--durable", "d1", "--from", "earliest", "--commit-interval", "0", "--server", server))
        {
            await Eventually.TrueAsync(() => sub.LineCount >= 3 || sub.HasExited, "the durable subscription prints the 3 orders");
            Assert.False(sub.HasExited, $"sub exited: {sub.Errors}");
            sub.Kill();
            Assert.True(sub.WaitForExit(TimeSpan.FromSeconds(30)), "sub killed");
        }

        await Cli.RunAsync("pub", "orders", "o4", "--server", server);
        string[] resume = ["sub", "orders", "--durable", "d1", "--from", "committed", "--count", "1", "--timeout", "60", "--server", server];
        var resumed = await CliOutcome.RunAsync(resume);
        for (var attempt = 0; attempt < 20 && resumed.ExitCode != 0 && resumed.Errors.Contains("DurableNameInUse", StringComparison.Ordinal); attempt++)
        {
            resumed = await CliOutcome.RunAsync(resume); // the server had not yet seen the killed one's connection close
        }

        Assert.True(resumed.ExitCode == 0, resumed.Describe(resume));
        Assert.Contains(resumed.Output, new[] { "o3", "o4" });
    }
}
