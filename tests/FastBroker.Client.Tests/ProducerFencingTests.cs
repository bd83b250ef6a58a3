using FastBroker.Client;
using FastBroker.Protocol;
using FastBroker.Testing;
using static FastBroker.ClientTests.Wire;

namespace FastBroker.ClientTests;

/// <summary>
/// Two live clients with one configured producer id (a rolling deploy: the new instance starts before the old one
/// stops). The new one's INIT_PRODUCER gets a higher epoch and fences the old one: the old one's publishes are refused
/// with <see cref="ErrorCode.ProducerFenced"/>, also after it reconnects, and nobody's message is confirmed as a
/// duplicate of the other's. Before epochs, both numbered from the same sequence and the second copy of each sequence
/// was confirmed with the first one's offset without being stored: acknowledged and lost.
/// </summary>
public class ProducerFencingTests
{
    private const ulong Id = 0x5151_0000_0000_0007;

    [Fact]
    public async Task A_second_instance_with_the_same_producer_id_fences_the_first_and_nothing_is_lost()
    {
        await using var f = await ServerFixture.StartAsync();
        var old = await f.ConnectAsync(o => o with { ProducerId = Id });
        for (var i = 0; i < 3; i++)
        {
            Assert.Equal(i, await Within(old.PublishAsync("fenced", Bytes($"old{i}"))));
        }

        var current = await f.ConnectAsync(o => o with { ProducerId = Id });

        // Interleaved, as two live instances would: the old one's are refused, the new one's stored.
        for (var i = 0; i < 3; i++)
        {
            var refused = await Assert.ThrowsAsync<BrokerClientException>(() => Within(old.PublishAsync("fenced", Bytes($"late{i}"))));
            Assert.Equal(ErrorCode.ProducerFenced, refused.ErrorCode);
            Assert.Contains("took it over", refused.Message, StringComparison.Ordinal);
            Assert.Equal(3 + i, await Within(current.PublishAsync("fenced", Bytes($"new{i}"))));
        }

        Assert.Equal(0, current.DuplicateConfirmations);
        var stored = await ReadTopicAsync(current, f, "fenced");
        Assert.Equal(["old0", "old1", "old2", "new0", "new1", "new2"], stored.Select(m => m.Payload));
    }

    [Fact]
    public async Task A_fenced_instance_that_reconnects_stays_fenced_and_its_resends_are_not_stored()
    {
        await using var f = await ServerFixture.StartAsync();
        await using var proxy = new TcpProxy(f.Port);
        var events = new System.Collections.Concurrent.ConcurrentQueue<BrokerClientEvent>();
        var old = await f.ConnectAsync(o => o with { ProducerId = Id, Endpoints = [proxy.Endpoint], OnEvent = events.Enqueue });
        Assert.Equal(0, await Within(old.PublishAsync("fenced", Bytes("old0"))));

        // Its next publishes are in flight (their confirmations dropped) when the new instance starts.
        proxy.DropServerBytes = true;
        var inFlight = Enumerable.Range(1, 3).Select(i => old.PublishAsync("fenced", Bytes($"old{i}")).AsTask()).ToList();
        await EventuallyAsync(() => Head(f, "fenced") == 4, "the server stored the old instance's three");
        var current = await f.ConnectAsync(o => o with { ProducerId = Id });
        Assert.Equal(4, await Within(current.PublishAsync("fenced", Bytes("new4"))));

        // The old instance reconnects: its resume is refused and its resends (already stored) are refused too, not
        // stored again and not confirmed; a new publish of it is refused.
        proxy.CutAllAndForwardServerBytes();
        foreach (var t in inFlight)
        {
            var refused = await Assert.ThrowsAsync<BrokerClientException>(() => t.WaitAsync(Deadline));
            Assert.Equal(ErrorCode.ProducerFenced, refused.ErrorCode);
        }

        var late = await Assert.ThrowsAsync<BrokerClientException>(() => Within(old.PublishAsync("fenced", Bytes("old5"))));
        Assert.Equal(ErrorCode.ProducerFenced, late.ErrorCode);
        Assert.Equal(2, old.ConnectCount);
        Assert.Contains(events, e => e.Kind == BrokerClientEventKind.ServerError && e.Code == ErrorCode.ProducerFenced);

        Assert.Equal(5, await Within(current.PublishAsync("fenced", Bytes("new5"))));
        var stored = await ReadTopicAsync(current, f, "fenced");
        Assert.Equal(["old0", "old1", "old2", "old3", "new4", "new5"], stored.Select(m => m.Payload));
    }

    [Fact]
    public async Task An_instance_that_reconnects_without_being_replaced_resumes_its_epoch()
    {
        await using var f = await ServerFixture.StartAsync();
        await using var proxy = new TcpProxy(f.Port);
        var client = await f.ConnectAsync(o => o with { ProducerId = Id, Endpoints = [proxy.Endpoint] });
        Assert.Equal(0, await Within(client.PublishAsync("resumed", Bytes("m0"))));
        proxy.DropServerBytes = true;
        var lost = client.PublishAsync("resumed", Bytes("m1")).AsTask();
        await EventuallyAsync(() => Head(f, "resumed") == 2, "the server stored m1");
        proxy.CutAllAndForwardServerBytes();

        Assert.Equal(1, await lost.WaitAsync(Deadline)); // resent with its epoch: a duplicate, confirmed with its offset
        Assert.Equal(1, client.DuplicateConfirmations);
        Assert.Equal(2, await Within(client.PublishAsync("resumed", Bytes("m2"))));
        Assert.Equal(3, Head(f, "resumed"));
    }

    [Fact]
    public async Task A_resume_the_server_cannot_write_closes_the_connection_and_the_resends_go_out_bound()
    {
        await using var f = await ServerFixture.StartAsync();
        var client = await f.ConnectAsync(o => o with { ProducerId = Id });

        // The restarted broker knows the client's epoch from nowhere (producers.state and producers.epochs removed, no
        // record carries it), so the resume raises it, and writing it fails: a directory where DurableFile writes first.
        var state = Path.Combine(f.DataDirectory, "producers.state");
        var epochs = Path.Combine(f.DataDirectory, "producers.epochs");
        var blocker = epochs + ".tmp";
        Task<long>? pending = null;
        await f.RestartBrokerAsync(
            b =>
            {
                Directory.CreateDirectory(blocker);
                b.CreateTopic("unbound");
                pending = client.PublishAsync("unbound", Bytes("m0")).AsTask(); // sent after the reconnect
                return Task.CompletedTask;
            },
            beforeOpen: () =>
            {
                File.Delete(state);
                File.Delete(epochs);
            });

        // Before, the resume's StorageError left the connection unbound and the publish went out on it all the same:
        // stored and confirmed without the epoch, neither fenced nor fencing. Now the refusal closes the connection,
        // and the next one's resume binds the epoch (the running broker took it although it could not write it) before
        // the publish is resent.
        Assert.Equal(0, await pending!.WaitAsync(Deadline));
        Directory.Delete(blocker);
        using var read = f.Broker.Subscribe("unbound", new SubscriptionOptions { Start = StartPosition.Earliest });
        using var cts = new CancellationTokenSource(Deadline);
        await foreach (var m in read.ReadAllAsync(cts.Token))
        {
            Assert.Equal(24, m.Header(Broker.ProducerHeader)!.Length); // id, sequence and epoch (16: unbound)
            break;
        }

        var refused = Assert.Single(f.Events, e => e.Kind == BrokerClientEventKind.Disconnected && e.Code == ErrorCode.StorageError);
        Assert.Contains("resuming producer epoch", refused.Message, StringComparison.Ordinal);
        Assert.Equal(3, client.ConnectCount);

        var current = await f.ConnectAsync(o => o with { ProducerId = Id });
        var fenced = await Assert.ThrowsAsync<BrokerClientException>(() => Within(client.PublishAsync("unbound", Bytes("m1"))));
        Assert.Equal(ErrorCode.ProducerFenced, fenced.ErrorCode);
        Assert.Equal(1, await Within(current.PublishAsync("unbound", Bytes("n1"))));
    }
}
