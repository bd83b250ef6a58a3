using System.Text.Json;
using FastBroker.Bench.EndToEnd;
using FastBroker.Bench.Infrastructure;
using FastBroker.Bench.Pair;

namespace FastBroker.Bench.Tests;

/// <summary>
/// `fastbroker bench e2e` against the server it starts by default: `fastbroker serve` as a child process (the
/// fastbroker.dll copied next to the tests), one short request-reply run.
/// </summary>
public class EndToEndBenchmarkTests
{
    [Fact]
    public async Task A_run_against_a_serve_child_reports_the_documented_fields()
    {
        var executable = FastBrokerExecutable.FromPath(Path.Combine(AppContext.BaseDirectory, "fastbroker.dll"));
        using var output = new StringWriter();
        var reporter = new InfoRecorder(new JsonLinesReporter(output));
        var ctx = new BenchContext(reporter, Messages: 1_000, Runs: 1, WarmupSeconds: 0, Filter: "request-reply");

        await Task.Run(() => EndToEndBenchmarks.Run(ctx, connect: null, executable)).WaitAsync(TimeSpan.FromMinutes(3));

        var line = Assert.Single(output.ToString().Split('\n', StringSplitOptions.RemoveEmptyEntries));
        using var doc = JsonDocument.Parse(line);
        var root = doc.RootElement;
        Assert.Equal("e2e", root.GetProperty("scenario").GetString());
        Assert.Equal("request-reply", root.GetProperty("variant").GetString());
        Assert.Equal(2_000, root.GetProperty("messages").GetInt64());
        Assert.True(root.GetProperty("p50Ns").GetInt64() > 0, line);
        Assert.Contains(reporter.Lines, l => l.StartsWith("`fastbroker serve` child process at 127.0.0.1:", StringComparison.Ordinal));
    }

    [Fact]
    public async Task A_serve_that_never_listens_is_reported_with_its_output()
    {
        // Not an executable fastbroker: the child exits at once, and the error carries what it printed.
        var bogus = new FastBrokerExecutable("dotnet", ["--no-such-option"]);
        var error = await Assert.ThrowsAsync<InvalidOperationException>(() => ServeChild.StartAsync(bogus, null));
        Assert.Contains("did not start listening", error.Message, StringComparison.Ordinal);
    }
}
