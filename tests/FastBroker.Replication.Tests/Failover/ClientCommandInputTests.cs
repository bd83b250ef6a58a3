using System.Globalization;
using FastBroker.Testing;

namespace FastBroker.ReplicationTests.Failover;

/// <summary>
/// <c>fastbroker pub|sub|topics|groups|stats</c> given bad input (a <c>--server</c> that is not host:port, an empty
/// topic, a negative TTL, an unknown output format) end with a non-zero exit and a one-line reason on stderr, never an
/// unhandled exception's stack trace; an unreachable server too.
/// </summary>
public class ClientCommandInputTests
{
    [Fact]
    public async Task Bad_input_is_a_one_line_error_and_a_non_zero_exit()
    {
        using var dir = new TempDirectory("fastbroker-cli-input");
        var port = FreePort.Next();
        var server = Cli.Address(port);
        using var serve = await Cli.ServeAsync(dir.Path, port);

        string[][] cases =
        [
            ["pub", "t", "x", "--server", "localhost"],
            ["topics", "--server", "127.0.0.1:99999"],
            ["pub", "", "x", "--server", server],
            ["pub", "t", "x", "--ttl-ms", "-5", "--server", server],
            ["sub", "t", "--format", "yaml", "--from", "earliest", "--count", "1", "--server", server],
            ["pub", "t", "x", "--server", $"127.0.0.1:{FreePort.Next().ToString(CultureInfo.InvariantCulture)}"], // nobody listens
        ];
        var failures = new List<string>();
        foreach (var args in cases)
        {
            var outcome = await CliOutcome.RunAsync(args);
            if (outcome.ExitCode is 0 or CliOutcome.StillRunning || outcome.HasStackTrace || outcome.Errors.Trim().Length == 0)
            {
                failures.Add(outcome.Describe(args));
            }
        }

        Assert.True(failures.Count == 0, string.Join("\n---\n", failures));
    }

    [Fact]
    public async Task A_value_the_client_refuses_names_the_argument_without_dotnets_parameter_suffix()
    {
        using var dir = new TempDirectory("fastbroker-cli-input");
        var port = FreePort.Next();
        using var serve = await Cli.ServeAsync(dir.Path, port);
        var outcome = await CliOutcome.RunAsync(["pub", "", "x", "--server", Cli.Address(port)]);
        Assert.Equal(64, outcome.ExitCode);
        Assert.StartsWith("pub: topic: ", outcome.Errors.Trim(), StringComparison.Ordinal);
        Assert.DoesNotContain("(Parameter", outcome.Errors, StringComparison.Ordinal);
    }
}
