using System.Text.Json;
using FastBroker.Bench.Failover;
using FastBroker.Bench.Infrastructure;
using FastBroker.Bench.Pair;

namespace FastBroker.Bench.Tests;

/// <summary>
/// `fastbroker bench failover` end to end, one round: a real witness and pair as child processes of the
/// fastbroker.dll copied next to the tests (the test host is not fastbroker, so the executable is given).
/// </summary>
public class FailoverBenchmarkTests
{
    private static FastBrokerExecutable Executable => FastBrokerExecutable.FromPath(Path.Combine(AppContext.BaseDirectory, "fastbroker.dll"));

    [Fact]
    public async Task One_round_loses_nothing_duplicates_nothing_and_reports_the_documented_fields()
    {
        using var output = new StringWriter();
        var reporter = new InfoRecorder(new JsonLinesReporter(output));
        var ctx = new BenchContext(reporter, Runs: 1, WarmupSeconds: 0);
        var options = new FailoverOptions
        {
            Executable = Executable,
            Rounds = 1,
            MinKillDelay = TimeSpan.FromMilliseconds(500),
            MaxKillDelay = TimeSpan.FromMilliseconds(1000),
            Seed = 1,

            // Not the documented 500 ms: on a loaded 2-vCPU CI machine a node stalled for half a second was taken for a
            // dead one, and the pair changed roles between the kill and the rejoin (a loaded run: seven epochs in 45 s).
            HeartbeatTimeoutMs = 2000,
        };

        var summary = await FailoverBenchmark.RunAsync(ctx, options, CancellationToken.None).WaitAsync(TimeSpan.FromMinutes(2));

        Assert.True(summary.Confirmed > 0, $"nothing confirmed: {summary}\n{reporter.Text}");
        Assert.True(summary.Lost == 0, $"{summary.Lost} confirmed publishes lost: {summary.Diagnostics}\n{reporter.Text}");
        Assert.True(summary.Duplicated == 0, $"{summary.Duplicated} publishes stored more than once: {summary.Diagnostics}\n{reporter.Text}");
        Assert.Null(summary.Diagnostics);
        var failover = Assert.Single(summary.FailoverMs);

        // After the kill, and within the step timeouts. Not "at least the heartbeat timeout": detection and the old lease
        // run out from the primary's last heartbeat and renewal, not from the kill, and a primary stalled by a loaded
        // machine may have sent neither for a while before it (a loaded CI run measured 1,415.7 ms with a 2,000 ms timeout).
        Assert.True(failover > 0 && failover <= 30_000, $"failover {failover} ms\n{reporter.Text}");
        Assert.Single(summary.PromotionMs); // the node killed was primary, and its standby was seen taking over

        var line = Assert.Single(output.ToString().Split('\n', StringSplitOptions.RemoveEmptyEntries));
        using var doc = JsonDocument.Parse(line);
        var root = doc.RootElement;
        Assert.Equal("failover", root.GetProperty("scenario").GetString());
        Assert.Equal("failover", root.GetProperty("variant").GetString());
        Assert.Equal(1, root.GetProperty("rounds").GetInt32());
        Assert.Equal(failover, root.GetProperty("failoverP50Ms").GetDouble(), 1);
        Assert.Equal(failover, root.GetProperty("failoverMaxMs").GetDouble(), 1);
        Assert.Equal(0, root.GetProperty("lost").GetInt64());
        Assert.Equal(0, root.GetProperty("duplicated").GetInt64());
        Assert.Equal(summary.Published, root.GetProperty("messages").GetInt64());
    }

    [Fact]
    public void A_dll_runs_under_the_dotnet_host()
    {
        var exe = Executable;
        Assert.Equal("dotnet", Path.GetFileNameWithoutExtension(exe.FileName));
        Assert.Equal(Path.Combine(AppContext.BaseDirectory, "fastbroker.dll"), Assert.Single(exe.LeadingArguments));
    }
}
