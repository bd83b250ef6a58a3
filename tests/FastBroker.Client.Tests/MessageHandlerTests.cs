using System.Collections.Concurrent;
using FastBroker.Client;
using static FastBroker.ClientTests.Wire;

namespace FastBroker.ClientTests;

/// <summary>Handler subscriptions (<see cref="BrokerClient.ConsumeAsync{THandler}"/>): deliveries as views on the reader loop.</summary>
public class MessageHandlerTests
{
    [Fact]
    public async Task A_pattern_handler_sees_every_topic_offset_payload_and_header_in_order_including_a_message_larger_than_a_read()
    {
        await using var f = await ServerFixture.StartAsync();
        var client = await f.ConnectAsync();
        var recorder = new Recorder();
        await using var consumer = await client.ConsumeAsync("h.*", recorder, SubscribeOptions.Default with { Start = SubscribeStart.Earliest, Credit = 16 });

        const int N = 400;
        var big = new byte[200 * 1024]; // bigger than the 64 KiB pipe reads: straddles segments, goes through the scratch buffer
        Random.Shared.NextBytes(big);
        var expected = new List<(string Topic, long Offset, string Payload, string Header)>();
        var publishes = new List<Task<long>>();
        for (var i = 0; i < N; i++)
        {
            var topic = i % 3 == 0 ? "h.b" : "h.a";
            var payload = i == N / 2 ? big : Bytes($"m{i}");
            publishes.Add(client.PublishAsync(topic, payload, PublishOptions.Default with { Key = Bytes($"k{i}"), Headers = new PublishHeaders().Add("i", $"{i}") }).AsTask());
        }

        var offsets = await Task.WhenAll(publishes).WaitAsync(Deadline);
        for (var i = 0; i < N; i++)
        {
            var payload = i == N / 2 ? Convert.ToBase64String(big) : $"m{i}";
            expected.Add((i % 3 == 0 ? "h.b" : "h.a", offsets[i], payload, $"{i}"));
        }

        await EventuallyAsync(() => recorder.Count == N, "every message reached the handler");
        foreach (var topic in new[] { "h.a", "h.b" })
        {
            Assert.Equal(
                expected.Where(e => e.Topic == topic).Select(e => (e.Topic, e.Offset, e.Payload, (string?)e.Header, $"k{e.Header}")),
                recorder.Received.Where(r => r.Topic == topic).Select(r => (r.Topic, r.Offset, r.Payload, r.Header, r.Key)));
        }

        Assert.Equal(consumer.Id, recorder.SubscriptionId);
        Assert.DoesNotContain(f.Events, e => e.Kind is BrokerClientEventKind.ServerError or BrokerClientEventKind.HandlerFailed);
    }

    [Fact]
    public async Task After_a_server_restart_plain_and_durable_handlers_see_each_message_once_in_order()
    {
        await using var f = await ServerFixture.StartAsync();
        var client = await f.ConnectAsync();
        var plain = new Recorder();
        var durable = new Recorder();
        var options = SubscribeOptions.Default with { Start = SubscribeStart.Earliest, Credit = 16 };
        await using var a = await client.ConsumeAsync("reh.topic", plain, options);

        // Durable and never committed: it resumes at Committed → Earliest, so the server redelivers everything and
        // the client must drop what the handler already had.
        await using var b = await client.ConsumeAsync("reh.topic", durable, options with { DurableName = "d1" });
        await Task.WhenAll(Enumerable.Range(0, 100).Select(i => client.PublishAsync("reh.topic", Bytes($"m{i}")).AsTask())).WaitAsync(Deadline);
        await EventuallyAsync(() => plain.Count == 100 && durable.Count == 100, "the first 100 arrived");

        await f.RestartServerAsync();
        await Task.WhenAll(Enumerable.Range(100, 100).Select(i => client.PublishAsync("reh.topic", Bytes($"m{i}")).AsTask())).WaitAsync(Deadline);
        await EventuallyAsync(() => plain.Count >= 200 && durable.Count >= 200, "the next 100 arrived");
        await EventuallyAsync(() => client.IsConnected, "connected");
        await client.PublishAsync("reh.topic", Bytes("m200")); // anything redelivered late would arrive before this one
        await EventuallyAsync(() => plain.Count >= 201 && durable.Count >= 201, "the last one arrived");

        foreach (var r in new[] { plain, durable })
        {
            Assert.Equal(Enumerable.Range(0, 201).Select(i => (long)i), r.Received.Select(m => m.Offset));
            Assert.Equal(Enumerable.Range(0, 201).Select(i => $"m{i}"), r.Received.Select(m => m.Payload));
        }

        Assert.True(client.ConnectCount >= 2);
        await b.CommitAsync();
        Assert.Equal(201, f.Broker.GetSnapshot().Topics.Single(t => t.Name == "reh.topic").Head);
    }

    [Fact]
    public async Task A_throwing_handler_is_reported_and_consumption_continues_on_the_same_connection()
    {
        await using var f = await ServerFixture.StartAsync();
        var client = await f.ConnectAsync();
        var recorder = new Recorder { ThrowOn = 3 };
        await using var consumer = await client.ConsumeAsync("h.fail", recorder, SubscribeOptions.Default with { Start = SubscribeStart.Earliest, Credit = 4 });
        for (var i = 0; i < 10; i++)
        {
            await client.PublishAsync("h.fail", Bytes($"m{i}"));
        }

        await EventuallyAsync(() => recorder.Count == 10, "every message reached the handler");
        var failed = Assert.Single(f.Events, e => e.Kind == BrokerClientEventKind.HandlerFailed);
        Assert.IsType<InvalidOperationException>(failed.Exception);
        Assert.Equal(consumer.Id, failed.SubscriptionId);
        Assert.Contains("h.fail@3", failed.Message, StringComparison.Ordinal);
        Assert.Equal(Enumerable.Range(0, 10).Select(i => (long)i), recorder.Received.Select(m => m.Offset));
        Assert.Equal(1, client.ConnectCount);
        Assert.True(client.IsConnected);
    }

    [Fact]
    public async Task A_struct_handler_keeps_its_state_and_a_disposed_consumer_is_not_called_again()
    {
        await using var f = await ServerFixture.StartAsync();
        var client = await f.ConnectAsync();
        var sink = new Counter();
        var consumer = await client.ConsumeAsync("h.struct", new CountingHandler(sink), SubscribeOptions.Default with { Start = SubscribeStart.Earliest, Credit = 8 });
        for (var i = 0; i < 50; i++)
        {
            await client.PublishAsync("h.struct", Bytes($"m{i}"));
        }

        await EventuallyAsync(() => Volatile.Read(ref sink.Count) == 50, "every message reached the handler");
        Assert.Equal(49, Volatile.Read(ref sink.LastSeenBySequence)); // the struct's own counter survived between calls

        await consumer.DisposeAsync();
        Assert.False(consumer.IsActive);
        await client.PublishAsync("h.struct", Bytes("late"));
        await client.PingAsync(); // a round trip on the same connection: a delivery sent before it would have arrived
        Assert.Equal(50, Volatile.Read(ref sink.Count));
    }

    private sealed class Recorder : IClientMessageHandler
    {
        private readonly ConcurrentQueue<(string Topic, long Offset, string Payload, string? Header, string Key)> _received = new();

        public long ThrowOn { get; init; } = -1;

        public uint SubscriptionId { get; private set; }

        public int Count => _received.Count;

        public List<(string Topic, long Offset, string Payload, string? Header, string Key)> Received => [.. _received];

        public void OnMessage(scoped in ClientMessageView message)
        {
            SubscriptionId = message.SubscriptionId;
            var payload = message.Payload.Length > 1024 ? Convert.ToBase64String(message.Payload) : message.GetPayloadString();
            Assert.Equal(message.Topic, System.Text.Encoding.UTF8.GetString(message.TopicUtf8));
            _received.Enqueue((message.Topic, message.Offset, payload, message.GetHeaderString("i"), System.Text.Encoding.UTF8.GetString(message.Key)));
            if (message.Offset == ThrowOn)
            {
                throw new InvalidOperationException("boom");
            }
        }
    }

    private sealed class Counter
    {
        public int Count;
        public int LastSeenBySequence;
    }

    private struct CountingHandler(Counter counter) : IClientMessageHandler
    {
        private int _calls;

        public void OnMessage(scoped in ClientMessageView message)
        {
            Volatile.Write(ref counter.LastSeenBySequence, _calls++);
            Interlocked.Increment(ref counter.Count);
        }
    }
}
