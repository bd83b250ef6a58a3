using System.Globalization;
using FastBroker.Testing;

namespace FastBroker.ReplicationTests.Failover;

/// <summary>
/// A script that captures a command's standard output gets only its results: a diagnostic (a node that cannot be
/// reached, a usage error) goes to standard error, and <c>--help</c>, which is what was asked for, to standard output.
/// </summary>
[Collection(nameof(FailoverCollection))]
public class CliOutputStreamTests
{
    /// <summary>
    /// <c>status</c> and <c>promote</c> printed "unreachable: …" on stdout, where a script reading the nodes' documents
    /// took it for one; an HTTP error page (a lone server's admin port: 404 for /status, 405 for /promote) went there
    /// too. They go to stderr now, naming the endpoint; the documents of the nodes that answered stay on stdout.
    /// </summary>
    [Fact]
    public async Task Status_and_promote_print_nodes_they_cannot_use_on_stderr_and_documents_on_stdout()
    {
        using var dir = new TempDirectory("fastbroker-cli-streams-pair");
        using var node = new NodeProcess("a", dir.Combine("a"), FreePort.Next(), Cli.Address(FreePort.Next()), ["--role", "primary", "--peer-wait-ms", "0", "--quiet"]);
        await node.StartAsync();
        var lonePort = FreePort.Next();
        var loneAdminPort = FreePort.Next();
        using var lone = await Cli.StartAsync("fastbroker listening", ["serve", "--data", dir.Combine("lone"), "--port", lonePort.ToString(CultureInfo.InvariantCulture), "--admin-port", loneAdminPort.ToString(CultureInfo.InvariantCulture), "--quiet"]);
        var nodeAdmin = Cli.Address(node.AdminPort);
        var loneAdmin = Cli.Address(loneAdminPort);
        var dead = Cli.Address(FreePort.Next()); // nothing listens there

        var failures = new List<string>();
        string[] mixed = ["status", "--admin", nodeAdmin, "--admin", dead, "--admin", loneAdmin];
        var status = await CliOutcome.RunAsync(mixed);
        if (status.ExitCode != 1
            || !status.Output.Contains($"# {nodeAdmin}", StringComparison.Ordinal) || !status.Output.Contains("\"role\"", StringComparison.Ordinal)
            || status.Output.Contains(dead, StringComparison.Ordinal) || status.Output.Contains(loneAdmin, StringComparison.Ordinal)
            || status.Output.Contains("unreachable", StringComparison.Ordinal) || status.Output.Contains("not found", StringComparison.Ordinal)
            || !status.Errors.Contains($"{dead}: unreachable", StringComparison.Ordinal) || !status.Errors.Contains($"{loneAdmin}: HTTP 404", StringComparison.Ordinal))
        {
            failures.Add($"expected exit 1, node {nodeAdmin}'s document on stdout, {dead} unreachable and {loneAdmin}'s 404 on stderr: {status.Describe(mixed)}, stdout: [{status.Output}]");
        }

        foreach (var (admin, error) in new[] { (dead, $"{dead}: unreachable"), (loneAdmin, $"{loneAdmin}: HTTP 405") })
        {
            string[] promote = ["promote", "--admin", admin];
            var outcome = await CliOutcome.RunAsync(promote);
            if (outcome.ExitCode != 1 || outcome.Output.Length > 0 || !outcome.Errors.Contains(error, StringComparison.Ordinal))
            {
                failures.Add($"expected exit 1, nothing on stdout, '{error}' on stderr: {outcome.Describe(promote)}, stdout: [{outcome.Output}]");
            }
        }

        Assert.True(failures.Count == 0, string.Join("\n---\n", failures));
    }

    /// <summary>
    /// A usage error (an unknown option or command, a missing argument, a value out of range, a payload that looks like
    /// an option) printed the command's whole help, and "did you mean" suggestions, on stdout besides the reason on
    /// stderr. Now stdout stays empty; stderr has the reason and a hint naming the command's help, exit 64. <c>--help</c>
    /// still prints the help on stdout, exit 0, nothing on stderr.
    /// </summary>
    [Fact]
    public async Task A_usage_error_prints_the_reason_and_a_hint_on_stderr_and_nothing_on_stdout()
    {
        (string[] Args, string Hint)[] cases =
        [
            (["stats", "--no-such-option"], "run 'fastbroker stats --help'"),
            (["status", "--admn", "127.0.0.1:7401"], "run 'fastbroker status --help'"), // with a "did you mean --admin"
            (["sttaus"], "run 'fastbroker --help'"),
            (["pub"], "run 'fastbroker pub --help'"),
            (["pub", "t", "x", "--count", "0"], "run 'fastbroker pub --help'"),
            (["journal", "dump"], "run 'fastbroker journal dump --help'"),
            (["sub", "t", "--format", "yaml"], "run 'fastbroker sub --help'"),
            (["pub", "t", "--bogus"], "run 'fastbroker pub --help'"), // refused by the command, not the parser
        ];
        var failures = new List<string>();
        foreach (var (args, hint) in cases)
        {
            var outcome = await CliOutcome.RunAsync(args);
            if (outcome.ExitCode != 64 || outcome.HasStackTrace || outcome.Output.Length > 0 || !outcome.Errors.Contains(hint, StringComparison.Ordinal)
                || outcome.Errors.Contains("Usage:", StringComparison.Ordinal))
            {
                failures.Add($"expected exit 64, nothing on stdout, the reason and \"{hint}\" on stderr: {outcome.Describe(args)}, stdout: [{outcome.Output}]");
            }
        }

        foreach (var args in new[] { new[] { "--help" }, ["pub", "--help"], ["journal", "dump", "-h"] })
        {
            var outcome = await CliOutcome.RunAsync(args);
            if (outcome.ExitCode != 0 || !outcome.Output.Contains("Usage:", StringComparison.Ordinal) || outcome.Errors.Length > 0)
            {
                failures.Add($"expected exit 0, the help on stdout, nothing on stderr: {outcome.Describe(args)}, stdout: [{outcome.Output}]");
            }
        }

        Assert.True(failures.Count == 0, string.Join("\n---\n", failures));
    }
}
