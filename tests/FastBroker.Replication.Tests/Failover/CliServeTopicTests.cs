using System.Text.Json;
using FastBroker.Client;
using FastBroker.Protocol;
using FastBroker.Testing;

namespace FastBroker.ReplicationTests.Failover;

/// <summary>
/// <c>serve --topic name:settings</c> declares topics at start, and <c>--retention</c>, <c>--retention-bytes</c>,
/// <c>--max-message-size</c>, <c>--segment-size</c> set what new topics get: before, <c>serve</c> could set no topic's
/// retention (every journal grew until the disk was full), size limits or kind, and with <c>--no-auto-create</c> no
/// topic could be created at all.
/// </summary>
public sealed class CliServeTopicTests
{
    [Fact]
    public async Task Serve_refuses_topic_settings_it_cannot_use_with_the_flag_and_the_reason()
    {
        using var dir = new TempDirectory("fastbroker-cli-topics");
        string[] serve = ["serve", "--port", "0", "--admin-port", "-1", "--quiet", "--data", dir.Combine("refused")];
        (string[] Args, string Reason)[] cases =
        [
            ([.. serve, "--topic", "a:bogus"], "--topic 'a:bogus': bogus: unknown setting"),
            ([.. serve, "--topic", "a:retention=5x"], "--topic 'a:retention=5x': retention: expected a number and ms, s, m, h or d"),
            ([.. serve, "--topic", "a:max-message-size=40M"], "--topic 'a:max-message-size=40M': segment-size must be at least 64 KiB and twice max-message-size"),
            ([.. serve, "--topic", "a", "--topic", "a:transient"], "--topic 'a:transient': topic 'a' is declared twice"),
            ([.. serve, "--topic", "a..b"], "--topic 'a..b': 'a..b' is not a topic name"),
            ([.. serve, "--retention-bytes", "ten"], "--retention-bytes: expected a number of bytes, or a number and K, M, G or T"),
            ([.. serve, "--segment-size", "1000"], "the settings of new topics (--max-message-size, --segment-size, --retention, --retention-bytes): segment-size"),
        ];
        var failures = new List<string>();
        foreach (var (args, reason) in cases)
        {
            var outcome = await CliOutcome.RunAsync(args, TimeSpan.FromSeconds(30));
            if (outcome.ExitCode != 64 || outcome.HasStackTrace || !outcome.Errors.Contains(reason, StringComparison.Ordinal))
            {
                failures.Add($"expected exit 64 and \"{reason}\" on stderr: {outcome.Describe(args)}");
            }
        }

        Assert.True(failures.Count == 0, string.Join("\n---\n", failures));
        Assert.False(Directory.Exists(dir.Combine("refused")), "a refused serve creates no data directory");
    }

    [Fact]
    public async Task Serve_creates_declared_topics_with_their_settings_applies_retention_and_logs_a_changed_declaration()
    {
        using var dir = new TempDirectory("fastbroker-cli-topics");
        var data = dir.Combine("data");
        var port = FreePort.Next();
        string[] flags = ["--no-auto-create", "--retention", "7d", "--topic", "orders:max-message-size=64K,segment-size=1M,retention-bytes=2M", "--topic", "ticks:transient,transient-capacity=1024", "--topic", "audit"];
        using (var serve = await Cli.ServeAsync(data, port, flags))
        {
            await using var client = await BrokerClient.ConnectAsync(BrokerClientOptions.Default with { Endpoints = [Cli.Address(port)], Reconnect = false });
            var unknown = await Assert.ThrowsAsync<BrokerClientException>(async () => await client.PublishAsync("other", new byte[8]));
            Assert.Equal(ErrorCode.UnknownTopic, unknown.ErrorCode);
            var tooLarge = await Assert.ThrowsAsync<BrokerClientException>(async () => await client.PublishAsync("orders", new byte[65 * 1024]));
            Assert.Equal(ErrorCode.MessageTooLarge, tooLarge.ErrorCode);
            await client.PublishAsync("ticks", new byte[8]);
            await client.PublishAsync("audit", new byte[8]);

            var topics = await TopicsAsync(port);
            Assert.False(topics["ticks"].GetProperty("persistent").GetBoolean());
            Assert.True(topics["orders"].GetProperty("persistent").GetBoolean());
            Assert.Contains("retentionBytes=2097152", File.ReadAllText(Path.Combine(data, "topics", "orders", "topic.meta")), StringComparison.Ordinal);
            Assert.Contains("retentionAgeMs=604800000", File.ReadAllText(Path.Combine(data, "topics", "audit", "topic.meta")), StringComparison.Ordinal); // --retention, for a topic declared without settings

            // 4 MiB into 1 MiB segments with 2 MiB of retention: the oldest segments go (the broker checks every 5 s).
            var payload = new byte[60 * 1024];
            for (var i = 0; i < 70; i++)
            {
                await client.PublishAsync("orders", payload);
            }

            var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(60);
            long tail;
            while ((tail = (await TopicsAsync(port))["orders"].GetProperty("tail").GetInt64()) == 0 && DateTime.UtcNow < deadline)
            {
                await Task.Delay(250); // polls the condition until its deadline
            }

            Assert.True(tail > 0, "retention deleted none of orders' segments in 60 s");
        }

        port = FreePort.Next();
        using var changed = await Cli.ServeAsync(data, port, "--no-auto-create", "--retention", "7d", "--topic", "orders:max-message-size=128K,segment-size=1M,retention-bytes=2M");
        // Logged by the open, before the ready line that ServeAsync waited for.
        Assert.Contains("topic 'orders' exists with other settings than declared (max message size: 65536 bytes here, declared 131072 bytes)", changed.Errors, StringComparison.Ordinal);
        await using var again = await BrokerClient.ConnectAsync(BrokerClientOptions.Default with { Endpoints = [Cli.Address(port)], Reconnect = false });
        Assert.Equal(ErrorCode.MessageTooLarge, (await Assert.ThrowsAsync<BrokerClientException>(async () => await again.PublishAsync("orders", new byte[65 * 1024]))).ErrorCode);
    }

    private static async Task<Dictionary<string, JsonElement>> TopicsAsync(int port)
    {
        var json = string.Join('\n', await Cli.RunAsync("topics", "--json", "--server", Cli.Address(port)));
        using var doc = JsonDocument.Parse(json);
        return doc.RootElement.GetProperty("topics").EnumerateArray().ToDictionary(t => t.GetProperty("name").GetString()!, t => t.Clone());
    }
}
