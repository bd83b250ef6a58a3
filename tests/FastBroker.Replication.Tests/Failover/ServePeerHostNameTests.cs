namespace FastBroker.ReplicationTests.Failover;

/// <summary>
/// <c>fastbroker serve --peer localhost:… --witness localhost:…</c> runs a pair (it was a usage error: "a pair node
/// does not resolve host names"), and <c>--connect-timeout-ms</c> / <c>--witness-timeout-ms</c> reach the node's
/// options (its <c>/status</c> shows the timeouts it uses).
/// </summary>
[Collection(nameof(FailoverCollection))]
public class ServePeerHostNameTests
{
    [Fact]
    public async Task A_pair_named_by_host_name_runs_with_the_timeouts_given()
    {
        await using var pair = new PairHarness();
        var witness = await pair.StartWitnessAsync();
        var witnessByName = $"localhost:{witness.Port}";
        int portA = FreePort.Next(), portB = FreePort.Next();
        var a = pair.AddNode("a", portA, $"localhost:{portB}", ["--witness", witnessByName, "--connect-timeout-ms", "1500", "--witness-timeout-ms", "700"]);
        var b = pair.AddNode("b", portB, $"localhost:{portA}", ["--witness", witnessByName, "--heartbeat-timeout-ms", "300"]);
        await a.StartAsync();
        var primary = await a.WaitForAsync(s => s.IsPrimary, "a takes the lease from the witness at localhost");
        await b.StartAsync();
        var standby = await b.WaitForAsync(s => s.IsStandby && s.Replica is { Connected: true, PrimaryId: "a" }, "b follows a at localhost");
        await a.WaitForAsync(s => s.Standby is { Attached: true }, "a has b attached");

        Assert.Equal((1500, 700), Timeouts(primary));

        // Not given: 1 s, or what the heartbeat timeout allows when that is shorter (a lease of 600 ms).
        Assert.Equal((1000, 600), Timeouts(standby));
        Assert.DoesNotContain("Exception", pair.Logs, StringComparison.Ordinal);
    }

    private static (long Connect, long Witness) Timeouts(NodeStatus status)
    {
        using var json = System.Text.Json.JsonDocument.Parse(status.Json);
        return (json.RootElement.GetProperty("connectTimeoutMs").GetInt64(), json.RootElement.GetProperty("witnessTimeoutMs").GetInt64());
    }
}
