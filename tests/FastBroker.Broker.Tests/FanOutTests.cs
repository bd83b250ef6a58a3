using FastBroker.Testing;

namespace FastBroker.BrokerTests;

public class FanOutTests
{
    [Fact]
    public async Task Three_subscribers_at_different_speeds_each_see_every_message_once_in_order()
    {
        await using var f = await BrokerFixture.StartAsync();
        var broker = f.Broker;
        broker.CreateTopic("prices");
        const int Count = 20_000;
        var subs = Enumerable.Range(0, 3).Select(_ => broker.Subscribe("prices", new SubscriptionOptions { Start = StartPosition.Earliest })).ToArray();
        var seen = subs.Select(_ => new Collected()).ToArray();

        var producer = Task.Run(async () =>
        {
            for (var i = 0; i < Count; i++)
            {
                while (!broker.TryPublish("prices", BrokerFixture.Utf8($"m{i}")))
                {
                    await Task.Yield();
                }
            }
        });

        // Different paces: batch sizes 1, 17 and 500 per fetch.
        var paces = new[] { 1, 17, 500 };
        var consumers = subs.Select((s, i) => Task.Run(async () =>
        {
            var recorder = new Recorder(seen[i]);
            while (seen[i].Items.Count < Count)
            {
                if (s.Fetch(paces[i], ref recorder) == 0)
                {
                    await s.WaitAsync().AsTask().WaitAsync(TimeSpan.FromSeconds(30));
                }
            }
        })).ToArray();

        await Eventually.Completes(producer);
        await Eventually.Completes(Task.WhenAll(consumers));
        foreach (var c in seen)
        {
            Assert.Equal(Count, c.Items.Count);
            for (var i = 0; i < Count; i++)
            {
                Assert.Equal(i, c.Items[i].Offset);
                Assert.Equal($"m{i}", c.Items[i].Payload);
            }
        }

        foreach (var s in subs)
        {
            s.Dispose();
        }
    }

    [Fact]
    public async Task A_stalled_subscriber_does_not_stop_the_others_or_the_producer()
    {
        await using var f = await BrokerFixture.StartAsync();
        var broker = f.Broker;
        broker.CreateTopic("events");
        using var stalled = broker.Subscribe("events", new SubscriptionOptions { Start = StartPosition.Earliest });
        using var a = broker.Subscribe("events", new SubscriptionOptions { Start = StartPosition.Earliest });
        using var b = broker.Subscribe("events", new SubscriptionOptions { Start = StartPosition.Earliest });

        // Many more messages than the input ring holds: if the stalled subscriber gated anything, this would hang.
        var count = broker.Options.InputRingSize * 4;
        for (var i = 0; i < count; i++)
        {
            await broker.PublishAsync("events", BrokerFixture.Utf8(i.ToString(System.Globalization.CultureInfo.InvariantCulture)));
        }

        var ca = new Collected();
        var cb = new Collected();
        var ra = new Recorder(ca);
        var rb = new Recorder(cb);
        Eventually.True(() =>
        {
            a.Fetch(1000, ref ra);
            b.Fetch(1000, ref rb);
            return ca.Items.Count == count && cb.Items.Count == count;
        }, "the two live subscribers receive everything while the third is stalled");

        Assert.Equal(count, stalled.Lag);
        Assert.Equal(0, a.Lag);

        // The stalled one resumes later and still gets everything, in order.
        var cs = new Collected();
        var rs = new Recorder(cs);
        while (stalled.Fetch(10_000, ref rs) > 0)
        {
        }

        Assert.Equal(Enumerable.Range(0, count).Select(i => (long)i), cs.Items.Select(x => x.Offset));
    }

    [Fact]
    public async Task Async_enumeration_delivers_owned_copies()
    {
        await using var f = await BrokerFixture.StartAsync();
        using var sub = f.Broker.Subscribe("greetings", new SubscriptionOptions { Start = StartPosition.Earliest });
        var headers = new MessageHeaders().Add("lang", "en");
        await f.Broker.PublishAsync("greetings", BrokerFixture.Utf8("hello"), key: BrokerFixture.Utf8("k1"), headers: headers);
        await f.Broker.PublishAsync("greetings", BrokerFixture.Utf8("world"));

        var got = new List<Message>();
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        await foreach (var m in sub.ReadAllAsync(cts.Token))
        {
            got.Add(m);
            if (got.Count == 2)
            {
                break;
            }
        }

        Assert.Equal(["hello", "world"], got.Select(m => m.PayloadText));
        Assert.Equal("en", got[0].HeaderText("lang"));
        Assert.Equal("k1"u8.ToArray(), got[0].Key.ToArray());
        Assert.True(got[0].Timestamp > 0);
    }

    [Fact]
    public async Task A_batch_the_header_filters_empty_does_not_stop_ReadAllAsync_or_ConsumeAsync()
    {
        await using var f = await BrokerFixture.StartAsync();
        var h = new MessageHeaders();

        // More non-matching messages than one fetch batch, then a matching one, and then nothing more.
        for (var i = 0; i < 600; i++)
        {
            await f.Broker.PublishAsync("fx", BrokerFixture.Utf8($"usd{i}"), headers: h.Clear().Add("ccy", "USD"));
        }

        await f.Broker.PublishAsync("fx", BrokerFixture.Utf8("eur"), headers: h.Clear().Add("ccy", "EUR"));
        var options = new SubscriptionOptions
        {
            Start = StartPosition.Earliest,
            BatchSize = 256,
            HeaderFilters = new Dictionary<string, string> { ["ccy"] = "EUR" },
        };

        using var enumerated = f.Broker.Subscribe("fx", options);
        using var cts = new CancellationTokenSource(Eventually.DefaultTimeout);
        await using var e = enumerated.ReadAllAsync(cts.Token).GetAsyncEnumerator(cts.Token);
        Assert.True(await e.MoveNextAsync(), "ReadAllAsync yields the matching message");
        Assert.Equal((600L, "eur"), (e.Current.Offset, e.Current.PayloadText));

        using var pushed = f.Broker.Subscribe("fx", options);
        var seen = new Collected();
        using var stop = new CancellationTokenSource();
        var consuming = pushed.ConsumeAsync(new LockedRecorder(seen), stop.Token);
        await Eventually.TrueAsync(() =>
        {
            lock (seen)
            {
                return seen.Items.Count == 1;
            }
        }, "ConsumeAsync delivers the matching message");
        await stop.CancelAsync();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => Eventually.Completes(consuming));
        Assert.Equal(600L, seen.Items.Single().Offset);
    }
}
