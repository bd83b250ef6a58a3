using System.Text.Json;
using FastBroker.Client;
using FastBroker.Protocol;
using FastBroker.Testing;

namespace FastBroker.ReplicationTests.Failover;

/// <summary>
/// <c>fastbroker serve</c> runs its sessions' reads inline on the runtime's socket thread by default (one thread
/// hand-off less per publish), on the thread pool when asked or with TLS. Checked on the real executable through the
/// thread the server saw its reads resume on (ServerStats <c>socketCompletions</c>).
/// </summary>
public class ServeSocketCompletionsTests
{
    [Theory]
    [InlineData("inline")]
    [InlineData("threadpool", "--socket-completions", "threadpool")]
    [InlineData("inline", "--socket-completions", "inline")]
    public async Task Serve_resumes_reads_where_it_was_told(string expected, params string[] extra)
    {
        using var dir = new TempDirectory("fastbroker-serve-io");
        var port = FreePort.Next();
        using var serve = await Cli.ServeAsync(dir.Path, port, extra);

        await using var client = await BrokerClient.ConnectAsync(BrokerClientOptions.Default with { Endpoints = [$"127.0.0.1:{port}"], Reconnect = false });

        // Sequential publishes: each one's read waits for its bytes, so the server notes where the read resumed.
        for (var i = 0; i < 5; i++)
        {
            Assert.Equal(i, await client.PublishAsync("io", new byte[8]));
        }

        using var stats = JsonDocument.Parse(await client.AdminAsync(AdminQuery.ServerStats));
        var server = stats.RootElement.GetProperty("server");
        Assert.Equal(expected, server.GetProperty("socketCompletions").GetString());
    }
}
