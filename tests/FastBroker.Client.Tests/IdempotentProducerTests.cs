using FastBroker.Testing;
using static FastBroker.ClientTests.Wire;

namespace FastBroker.ClientTests;

/// <summary>
/// Publishes the server stored but whose CONFIRMs were lost with the connection: the client resends them with
/// their original producer id and sequence, and the server confirms the original offsets without storing them twice.
/// </summary>
public class IdempotentProducerTests
{
    [Fact]
    public async Task Publishes_stored_but_unconfirmed_before_a_connection_loss_are_resent_and_stored_once()
    {
        await using var f = await ServerFixture.StartAsync();
        await using var proxy = new TcpProxy(f.Port);
        var client = await f.ConnectAsync(o => o with { Endpoints = [proxy.Endpoint] });
        Assert.Equal(0, await client.PublishAsync("idem", Bytes("m0")));

        proxy.DropServerBytes = true;
        var lost = Enumerable.Range(1, 100).Select(i => client.PublishAsync("idem", Bytes($"m{i}")).AsTask()).ToList();
        await EventuallyAsync(() => Head(f, "idem") == 101, "the server stored all of them");
        Assert.All(lost, t => Assert.False(t.IsCompleted));

        proxy.DropServerBytes = false;
        proxy.CutAll();
        var offsets = await Task.WhenAll(lost).WaitAsync(Deadline);

        Assert.Equal(Enumerable.Range(1, 100).Select(i => (long)i), offsets);
        Assert.Equal(100, client.DuplicateConfirmations);
        Assert.Equal(2, client.ConnectCount);
        Assert.Equal(101, await client.PublishAsync("idem", Bytes("m101")));
        Assert.Equal(102, Head(f, "idem"));
    }

    [Fact]
    public async Task Two_clients_have_different_producer_ids_and_a_configured_one_is_kept()
    {
        await using var f = await ServerFixture.StartAsync();
        var a = await f.ConnectAsync();
        var b = await f.ConnectAsync();
        var c = await f.ConnectAsync(o => o with { ProducerId = 42 });
        Assert.NotEqual(0UL, a.ProducerId);
        Assert.NotEqual(a.ProducerId, b.ProducerId);
        Assert.Equal(42UL, c.ProducerId);
    }

    private static long Head(ServerFixture f, string topic)
        => f.Broker.GetSnapshot().Topics.SingleOrDefault(t => t.Name == topic)?.Head ?? -1;
}
