using System.Globalization;
using FastBroker.Testing;

namespace FastBroker.ReplicationTests.Failover;

/// <summary>
/// A script that captures a command's standard output gets only its results: a diagnostic (a node that cannot be
/// reached) goes to standard error.
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
}
