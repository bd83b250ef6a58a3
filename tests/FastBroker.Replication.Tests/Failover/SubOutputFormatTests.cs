using System.Text.Json;
using FastBroker.Testing;

namespace FastBroker.ReplicationTests.Failover;

/// <summary>
/// <c>sub --format full</c> and <c>--format json</c> show what <c>pub</c> can set: the key and the headers. Before,
/// full printed no key and json neither key nor headers, so <c>pub --key k1 -H a=b</c> could not be seen from the CLI.
/// </summary>
public class SubOutputFormatTests
{
    [Fact]
    public async Task Full_and_json_show_the_key_and_the_headers()
    {
        using var dir = new TempDirectory("fastbroker-cli-sub-format");
        var port = FreePort.Next();
        var server = Cli.Address(port);
        using var serve = await Cli.ServeAsync(dir.Combine("data"), port);
        await Cli.RunAsync("pub", "fmt", "hello", "--key", "k1", "-H", "a=b", "-H", "c=d", "--server", server);
        await Cli.RunAsync("pub", "fmt", "plain", "--server", server);

        var full = await CliOutcome.RunAsync(["sub", "fmt", "--from", "earliest", "--count", "2", "--timeout", "60", "--format", "full", "--server", server]);
        Assert.True(full.ExitCode == 0, full.Describe(["sub", "--format", "full"]));
        var lines = full.Output.Split('\n');
        Assert.Equal(2, lines.Length);
        Assert.StartsWith("fmt@0 ", lines[0], StringComparison.Ordinal);
        Assert.Contains(" key=k1 ", lines[0], StringComparison.Ordinal);
        Assert.Contains(" a=b c=d hello", lines[0], StringComparison.Ordinal);
        Assert.DoesNotContain("key=", lines[1], StringComparison.Ordinal);
        Assert.EndsWith(" plain", lines[1], StringComparison.Ordinal);

        var json = await CliOutcome.RunAsync(["sub", "fmt", "--from", "earliest", "--count", "2", "--timeout", "60", "--format", "json", "--server", server]);
        Assert.True(json.ExitCode == 0, json.Describe(["sub", "--format", "json"]));
        var docs = json.Output.Split('\n').Select(l => JsonDocument.Parse(l)).ToArray();
        try
        {
            Assert.Equal(2, docs.Length);
            var first = docs[0].RootElement;
            Assert.Equal("hello", first.GetProperty("payload").GetString());
            Assert.Equal("k1", first.GetProperty("key").GetString());
            var headers = first.GetProperty("headers");
            Assert.Equal("b", headers.GetProperty("a").GetString());
            Assert.Equal("d", headers.GetProperty("c").GetString());
            Assert.False(headers.TryGetProperty("fb-producer", out _), "fb-producer is the broker's bookkeeping");
            var second = docs[1].RootElement;
            Assert.False(second.TryGetProperty("key", out _), second.ToString());
            Assert.Empty(second.GetProperty("headers").EnumerateObject());
        }
        finally
        {
            foreach (var d in docs)
            {
                d.Dispose();
            }
        }
    }

    /// <summary>
    /// A message published with a TTL carries the broker's <c>fb-expires</c> (8-byte Unix ms): shown as an <c>expires</c>
    /// time, not as the header's raw bytes in hex (before: <c>fb-expires=0x…</c>).
    /// </summary>
    [Fact]
    public async Task A_ttl_shows_as_an_expiry_time_not_as_the_raw_header()
    {
        using var dir = new TempDirectory("fastbroker-cli-sub-format");
        var port = FreePort.Next();
        var server = Cli.Address(port);
        using var serve = await Cli.ServeAsync(dir.Combine("data"), port);
        var before = DateTimeOffset.UtcNow;
        await Cli.RunAsync("pub", "ttl", "soon", "--ttl-ms", "3600000", "--server", server);

        var full = await CliOutcome.RunAsync(["sub", "ttl", "--from", "earliest", "--count", "1", "--timeout", "60", "--format", "full", "--server", server]);
        Assert.True(full.ExitCode == 0, full.Describe(["sub", "--format", "full"]));
        Assert.DoesNotContain("fb-expires", full.Output, StringComparison.Ordinal);
        var expires = DateTimeOffset.Parse(full.Output.Split(" expires=")[1].Split(' ')[0], System.Globalization.CultureInfo.InvariantCulture);
        Assert.InRange(expires, before.AddMinutes(59), before.AddMinutes(61));

        var json = await CliOutcome.RunAsync(["sub", "ttl", "--from", "earliest", "--count", "1", "--timeout", "60", "--format", "json", "--server", server]);
        using var doc = JsonDocument.Parse(json.Output);
        Assert.Equal(expires, doc.RootElement.GetProperty("expires").GetDateTimeOffset());
        Assert.False(doc.RootElement.GetProperty("headers").TryGetProperty("fb-expires", out _), json.Output);
    }
}
