using FastBroker.Testing;

namespace FastBroker.ReplicationTests.Failover;

/// <summary>
/// <c>sub --group</c> joins a work-queue group, which has no start and no durable name of its own: it delivers from where
/// the group is. <c>--from</c>, <c>--durable</c> and <c>--commit-interval</c> given with it were silently ignored
/// (<c>sub jobs --group g --from latest</c> printed the group's oldest unacked job; <c>--durable d</c> committed nothing),
/// so they are refused as a command line the command cannot use: exit 64, nothing joined, nothing taken.
/// </summary>
public class SubGroupOptionTests
{
    [Fact]
    public async Task Fan_out_options_given_with_group_are_refused_and_take_nothing()
    {
        using var dir = new TempDirectory("fastbroker-cli-sub-group");
        var port = FreePort.Next();
        var server = Cli.Address(port);
        using var serve = await Cli.ServeAsync(dir.Combine("data"), port);
        await Cli.RunAsync("pub", "jobs", "j1", "--server", server);

        (string[] Args, string Option)[] cases =
        [
            (["sub", "jobs", "--group", "g", "--from", "latest", "--timeout", "5", "--server", server], "--from"),
            (["sub", "jobs", "--group", "g", "--durable", "d", "--timeout", "5", "--server", server], "--durable"),
            (["sub", "jobs", "--group", "g", "--commit-interval", "0", "--timeout", "5", "--server", server], "--commit-interval"),
        ];
        var failures = new List<string>();
        foreach (var (args, option) in cases)
        {
            var outcome = await CliOutcome.RunAsync(args);
            if (outcome.ExitCode != 64 || outcome.HasStackTrace || outcome.Output.Length > 0
                || !outcome.Errors.Contains(option, StringComparison.Ordinal)
                || !outcome.Errors.Contains("--group", StringComparison.Ordinal))
            {
                failures.Add($"expected exit 64 naming {option} and --group: {outcome.Describe(args)}");
            }
        }

        // The job is still there for a member that asks plainly.
        var member = await CliOutcome.RunAsync(["sub", "jobs", "--group", "g", "--count", "1", "--timeout", "60", "--server", server]);
        if (member.ExitCode != 0 || member.Output != "j1")
        {
            failures.Add($"a plain member: printed [{member.Output}]: {member.Describe(["sub", "--group"])}");
        }

        Assert.True(failures.Count == 0, string.Join("\n---\n", failures));
    }
}
