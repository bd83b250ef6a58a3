using System.Globalization;
using FastBroker.Testing;

namespace FastBroker.ReplicationTests.Failover;

/// <summary>
/// <c>fastbroker serve</c> given a flag value it cannot use (an unknown ack mode or role, a port out of range, a data
/// directory that is a file) refuses to start: a non-zero exit and a one-line reason on stderr, never an unhandled
/// exception's stack trace, and never a node started with a role it was not given.
/// </summary>
public class ServeInputTests
{
    [Fact]
    public async Task Unusable_flag_values_stop_serve_with_a_one_line_error()
    {
        using var dir = new TempDirectory("fastbroker-serve-input");
        var file = dir.Combine("not-a-directory");
        File.WriteAllText(file, "x");
        string P() => FreePort.Next().ToString(CultureInfo.InvariantCulture);

        string[][] cases =
        [
            ["serve", "--data", dir.Combine("a"), "--port", P(), "--admin-port", "-1", "--acks", "standby-recieved"],
            ["serve", "--data", dir.Combine("b"), "--port", P(), "--admin-port", "70000"],
            ["serve", "--data", file, "--port", P(), "--admin-port", "-1"],
            ["serve", "--data", dir.Combine("c"), "--port", P(), "--admin-port", "-1", "--peer", $"127.0.0.1:{P()}", "--replication-port", P(), "--role", "primray"],
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
}
