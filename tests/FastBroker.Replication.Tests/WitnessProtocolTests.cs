using System.Text;
using FastBroker.Replication;
using FastBroker.Testing;

namespace FastBroker.ReplicationTests;

/// <summary>The witness line protocol: bad input gets ERROR and a close, everyone else keeps being served.</summary>
public class WitnessProtocolTests
{
    [Theory]
    [InlineData("HELLO")]
    [InlineData("")]
    [InlineData("acquire node-a 0 1000")]
    [InlineData("ACQUIRE node-a")]
    [InlineData("ACQUIRE node-a 0 1000 extra")]
    [InlineData("ACQUIRE node/a 0 1000")]
    [InlineData("ACQUIRE node-a -1 1000")]
    [InlineData("ACQUIRE node-a +1 1000")]
    [InlineData("ACQUIRE node-a 9223372036854775808 1000")]
    [InlineData("ACQUIRE node-a 0 49")]
    [InlineData("ACQUIRE node-a 0 60001")]
    [InlineData("ACQUIRE  node-a 0 1000")]
    [InlineData("ACQUIRE node-a 0 1000 ")]
    [InlineData("ACQUIRE nöde 0 1000")]
    [InlineData("RELEASE")]
    [InlineData("STATUS now")]
    [InlineData("ACQUIRE\tnode-a 0 1000")]
    [InlineData("ACQUIRE node-a 0 1000 force extra")]
    [InlineData("ACQUIRE node-a 0 1000 FORCE")]
    [InlineData("STANDBY node-a 1")]
    [InlineData("STANDBY node-a 1 maybe")]
    [InlineData("STANDBY node/a 1 behind")]
    [InlineData("STANDBY node-a -1 behind")]
    [InlineData("STANDBY node-a 1 behind extra")]
    public async Task A_malformed_line_gets_an_error_and_a_close_while_others_keep_being_served(string line)
    {
        await using var f = await WitnessFixture.StartAsync();
        var good = f.Client();
        Assert.True((await good.AcquireAsync("good", 0, TimeSpan.FromSeconds(10))).IsGranted);
        var bystander = await f.ConnectRawAsync();
        await bystander.SendAsync("STATUS\n");
        Assert.StartsWith("STATUS good 1 ", await bystander.ExpectLineAsync(), StringComparison.Ordinal);

        var bad = await f.ConnectRawAsync();
        await bad.SendAsync(line + "\n");

        Assert.StartsWith("ERROR ", await bad.ExpectLineAsync(), StringComparison.Ordinal);
        Assert.Null(await bad.ReadLineAsync());
        Assert.Equal(("good", 1L), (f.Server.Holder, f.Server.Epoch));
        Assert.Equal((LeaseResultKind.Granted, 1L), ((await good.AcquireAsync("good", 1, TimeSpan.FromSeconds(10))).Kind, f.Server.Epoch));
        await bystander.SendAsync("STATUS\n");
        Assert.StartsWith("STATUS good 1 ", await bystander.ExpectLineAsync(), StringComparison.Ordinal);
    }

    [Theory]
    [InlineData(257, true)]
    [InlineData(300, false)]
    [InlineData(4096, false)]
    public async Task An_overlong_line_gets_an_error_and_a_close(int length, bool terminated)
    {
        await using var f = await WitnessFixture.StartAsync();
        var bad = await f.ConnectRawAsync();
        var line = "STATUS " + new string('x', length - 7) + (terminated ? "\n" : "");

        await bad.SendAsync(line);

        var error = await bad.ExpectLineAsync();
        Assert.StartsWith("ERROR ", error, StringComparison.Ordinal);
        Assert.Contains("256", error, StringComparison.Ordinal);
        Assert.Null(await bad.ReadLineAsync());
        Assert.Equal(LeaseResultKind.Status, (await f.Client().StatusAsync()).Kind);
    }

    [Fact]
    public async Task A_line_of_exactly_256_bytes_is_accepted()
    {
        await using var f = await WitnessFixture.StartAsync();
        var c = await f.ConnectRawAsync();

        await c.SendAsync("ACQUIRE node-a 0 " + new string('0', 256 - 17 - 5) + "1000\n"); // leading zeros pad it out

        Assert.Equal("GRANTED 1 1000", await c.ExpectLineAsync());
    }

    [Fact]
    public async Task Pipelined_requests_on_one_connection_are_answered_in_order()
    {
        await using var f = await WitnessFixture.StartAsync();
        var c = await f.ConnectRawAsync();

        await c.SendAsync("ACQUIRE node-a 0 10000\nSTATUS\r\nACQUIRE node-b 0 10000\nRELEASE node-a\nSTATUS\nACQUIRE node-b 0 10000\n");

        Assert.Equal("GRANTED 1 10000", await c.ExpectLineAsync());
        Assert.StartsWith("STATUS node-a 1 ", await c.ExpectLineAsync(), StringComparison.Ordinal);
        Assert.StartsWith("DENIED node-a 1 ", await c.ExpectLineAsync(), StringComparison.Ordinal);
        Assert.Equal("RELEASED", await c.ExpectLineAsync());
        Assert.Equal("STATUS node-a 1 0", await c.ExpectLineAsync());
        Assert.Equal("GRANTED 2 10000", await c.ExpectLineAsync());
    }

    [Fact]
    public async Task A_request_split_across_packets_is_reassembled()
    {
        await using var f = await WitnessFixture.StartAsync();
        var c = await f.ConnectRawAsync();

        foreach (var part in new[] { "ACQ", "UIRE node-a 0 ", "100", "0\nSTA", "TUS\n" })
        {
            await c.SendAsync(part);
            await Task.Yield();
        }

        Assert.Equal("GRANTED 1 1000", await c.ExpectLineAsync());
        Assert.StartsWith("STATUS node-a 1 ", await c.ExpectLineAsync(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task Many_concurrent_connections_are_served()
    {
        await using var f = await WitnessFixture.StartAsync();
        var connections = await Task.WhenAll(Enumerable.Range(0, 64).Select(_ => f.ConnectRawAsync()));

        var answers = await Eventually.Completes(Task.WhenAll(connections.Select(async c =>
        {
            await c.SendAsync(Encoding.ASCII.GetBytes("STATUS\n"));
            return await c.ExpectLineAsync();
        })));

        Assert.All(answers, a => Assert.Equal("STATUS - 0 0", a));
    }

    [Fact]
    public async Task Stopping_the_witness_closes_open_connections()
    {
        await using var f = await WitnessFixture.StartAsync();
        var c = await f.ConnectRawAsync();
        await c.SendAsync("STATUS\n");
        Assert.Equal("STATUS - 0 0", await c.ExpectLineAsync());

        await Eventually.Completes(f.Server.StopAsync());

        Assert.Null(await c.ReadLineAsync());
    }
}
