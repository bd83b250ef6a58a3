using FastBroker.Testing;

namespace FastBroker.ReplicationTests.Failover;

/// <summary>
/// A value of the command line that the server refuses (an invalid topic name or pattern, a start that needs a durable
/// name, a wildcard given as a group's topic) is a command line the command cannot use: exit 64 with the server's
/// reason on stderr (docs/cli.md). It exited 1, which is <c>sub</c>'s "no message within --timeout", so a script
/// waiting on a topic with a typo in its pattern read it as "nothing came".
/// </summary>
public class CliServerRefusalTests
{
    [Fact]
    public async Task A_value_the_server_refuses_exits_64_with_its_reason()
    {
        using var dir = new TempDirectory("fastbroker-cli-server-refusal");
        var port = FreePort.Next();
        var server = Cli.Address(port);
        using var serve = await Cli.ServeAsync(dir.Combine("data"), port);

        (string[] Args, string Reason)[] cases =
        [
            (["pub", "bad topic", "x", "--server", server], "not a valid topic name"),
            (["pub", "orders.*", "x", "--server", server], "not a valid topic name"),
            (["sub", "orders.>.x", "--timeout", "5", "--server", server], "'>' must be the last token"),
            (["sub", "a..b", "--timeout", "5", "--server", server], "empty token"),
            (["sub", "orders", "--from", "committed", "--timeout", "5", "--server", server], "durable"),
            (["sub", "orders.*", "--group", "g", "--timeout", "5", "--server", server], "wildcards"),
        ];
        var failures = new List<string>();
        foreach (var (args, reason) in cases)
        {
            var outcome = await CliOutcome.RunAsync(args);
            if (outcome.ExitCode != 64 || outcome.HasStackTrace || outcome.Output.Length > 0
                || !outcome.Errors.Contains(reason, StringComparison.Ordinal)
                || !outcome.Errors.Contains($"run 'fastbroker {args[0]} --help' for usage", StringComparison.Ordinal))
            {
                failures.Add($"expected exit 64 with '{reason}' and the usage hint: {outcome.Describe(args)}");
            }
        }

        // A refusal that is not about the command line keeps exit 1: a server that is not there.
        var unreachable = await CliOutcome.RunAsync(["pub", "orders", "x", "--server", Cli.Address(FreePort.Next())]);
        if (unreachable.ExitCode != 1)
        {
            failures.Add($"expected exit 1 for an unreachable server: {unreachable.Describe(["pub"])}");
        }

        Assert.True(failures.Count == 0, string.Join("\n---\n", failures));
    }
}
