using System.Text.RegularExpressions;
using FastBroker.Testing;

namespace FastBroker.ReplicationTests.Failover;

/// <summary>
/// <c>serve --producer-epoch-retention-s</c> sets <c>BrokerOptions.ProducerEpochRetention</c> (0 = never), refused with
/// exit 64 naming both flags when below <c>--producer-expiry-s</c> (or finite when the expiry is 0, never); the producer
/// flags not given are compared by their defaults (<c>--producer-expiry-s 3600</c> alone was refused: the idle timeout
/// not given read as 0); and the help of <c>serve --host</c> and <c>witness --host</c> says how a host is bound
/// (docs/server.md, Listen addresses).
/// </summary>
public sealed partial class CliServeFlagTests
{
    [Fact]
    public async Task Serve_takes_a_producer_epoch_retention_not_below_the_producer_expiry()
    {
        using var dir = new TempDirectory("fastbroker-cli-epoch-retention");
        string[] serve = ["serve", "--port", "0", "--admin-port", "-1", "--quiet", "--data", dir.Combine("refused")];
        (string[] Args, string Reason)[] cases =
        [
            ([.. serve, "--producer-expiry-s", "3600", "--producer-epoch-retention-s", "60"], "--producer-epoch-retention-s (60) must be 0 (never) or at least --producer-expiry-s (3600)"),
            ([.. serve, "--producer-epoch-retention-s", "3600"], "--producer-epoch-retention-s (3600) must be 0 (never) or at least --producer-expiry-s (86400)"), // the expiry's default: a day
            ([.. serve, "--producer-expiry-s", "0", "--producer-epoch-retention-s", "604800"], "--producer-epoch-retention-s (604800) must be 0 (never) when --producer-expiry-s is 0 (never)"),
            ([.. serve, "--producer-epoch-retention-s", "-1"], "--producer-epoch-retention-s cannot be negative"),
            ([.. serve, "--producer-idle-timeout-s", "100000"], "--producer-expiry-s (86400) must be 0 (never) or at least --producer-idle-timeout-s (100000, which must then not be 0)"), // the expiry's default
        ];
        var failures = new List<string>();
        foreach (var (args, reason) in cases)
        {
            var outcome = await CliOutcome.RunAsync(args, TimeSpan.FromSeconds(30));
            if (outcome.ExitCode != 64 || outcome.HasStackTrace || outcome.Output.Length > 0
                || !outcome.Errors.Contains(reason, StringComparison.Ordinal) || outcome.Errors.Contains("Unrecognized command or argument", StringComparison.Ordinal))
            {
                failures.Add($"expected exit 64, nothing on stdout and \"{reason}\" on stderr: {outcome.Describe(args)}, stdout: [{outcome.Output}]");
            }
        }

        var unparsable = await CliOutcome.RunAsync([.. serve, "--producer-epoch-retention-s", "7d"], TimeSpan.FromSeconds(30));
        if (unparsable.ExitCode != 64 || unparsable.HasStackTrace || !unparsable.Errors.Contains("--producer-epoch-retention-s expects ", StringComparison.Ordinal))
        {
            failures.Add($"expected exit 64 and \"--producer-epoch-retention-s expects …\": {unparsable.Describe([.. serve, "--producer-epoch-retention-s", "7d"])}");
        }

        Assert.True(failures.Count == 0, string.Join("\n---\n", failures));
        Assert.False(Directory.Exists(dir.Combine("refused")), "a refused serve creates no data directory");

        // In range: at least the expiry given, or 0 with any expiry; an expiry alone is compared with the idle timeout's
        // default (15 min), not with 0.
        string[][] fine = [["--producer-expiry-s", "3600", "--producer-epoch-retention-s", "3600"], ["--producer-expiry-s", "0", "--producer-epoch-retention-s", "0"], ["--producer-expiry-s", "3600"]];
        for (var i = 0; i < fine.Length; i++)
        {
            using var node = await Cli.ServeAsync(dir.Combine($"data{i}"), FreePort.Next(), fine[i]);
            Assert.Contains(node.Lines, l => l.StartsWith("fastbroker listening", StringComparison.Ordinal));
        }
    }

    [Fact]
    public async Task Serve_and_witness_help_state_how_a_host_name_is_bound()
    {
        const string Rule = "an IP address is bound as given; a host name binds its first IPv4 address, or its first address if it has none";
        var failures = new List<string>();
        foreach (var command in new[] { "serve", "witness" })
        {
            var help = Spaces().Replace(string.Join(' ', await Cli.RunAsync(command, "--help")), " ");
            if (!help.Contains(Rule, StringComparison.Ordinal))
            {
                failures.Add($"{command} --help does not say \"{Rule}\": {help}");
            }

            if (command == "serve" && !help.Contains("--producer-epoch-retention-s", StringComparison.Ordinal))
            {
                failures.Add($"serve --help has no --producer-epoch-retention-s: {help}");
            }
        }

        Assert.True(failures.Count == 0, string.Join("\n---\n", failures));
    }

    [GeneratedRegex(@"\s+")]
    private static partial Regex Spaces();
}
