using System.Collections.Concurrent;
using System.Text;
using FastBroker.Testing;

namespace FastBroker.BrokerTests;

public class InlineSubscriptionTests
{
    [Fact]
    public async Task Backlog_then_live_messages_arrive_once_in_order_and_live_ones_on_the_pipeline_thread()
    {
        await using var f = await BrokerFixture.StartAsync();
        var broker = f.Broker;
        broker.CreateTopic("ticks");
        const int Backlog = 5_000;
        const int Live = 20_000;
        for (var i = 0; i < Backlog; i++)
        {
            await broker.PublishAsync("ticks", BrokerFixture.Utf8($"m{i}"));
        }

        var handler = new ThreadRecorder();
        using var sub = broker.SubscribeInline("ticks", handler, new SubscriptionOptions { Start = StartPosition.Earliest });
        Assert.True(sub.IsInline);

        // Live messages race the backlog's delivery on purpose: the two must never overlap or reorder.
        for (var i = Backlog; i < Backlog + Live; i++)
        {
            while (!broker.TryPublish("ticks", BrokerFixture.Utf8($"m{i}")))
            {
                await Task.Yield();
            }
        }

        await Eventually.TrueAsync(() => handler.Count >= Backlog + Live, "every message delivered");
        Assert.Null(sub.Fault);
        Assert.Equal(0, handler.Overlaps);
        var items = handler.Snapshot();
        Assert.Equal(Backlog + Live, items.Count);
        for (var i = 0; i < items.Count; i++)
        {
            Assert.Equal(i, items[i].Offset);
            Assert.Equal($"m{i}", items[i].Payload);
        }

        // Once the backlog's catch-up has handed over, live messages come from the journaler itself. The hand-over
        // may still be finishing, so publish one at a time until one does (bounded).
        string? thread = null;
        for (var extra = 1; extra <= 200 && thread != "fastbroker-journaler"; extra++)
        {
            await broker.PublishAsync("ticks", BrokerFixture.Utf8($"extra{extra}"));
            var expected = Backlog + Live + extra;
            await Eventually.TrueAsync(() => handler.Count == expected, "the extra message delivered");
            thread = handler.Snapshot()[^1].Thread;
            Assert.Equal(expected, sub.Delivered);
        }

        Assert.Equal("fastbroker-journaler", thread);
        Assert.Equal(0, handler.Overlaps);
    }

    [Fact]
    public async Task An_inline_subscription_cannot_also_be_fetched_from()
    {
        await using var f = await BrokerFixture.StartAsync();
        using var sub = f.Broker.SubscribeInline("orders", new ThreadRecorder());
        var recorder = new Recorder(new Collected());
        Assert.Throws<InvalidOperationException>(() => sub.Fetch(10, ref recorder));
        await Assert.ThrowsAsync<InvalidOperationException>(() => sub.ConsumeAsync(recorder));
    }

    [Fact]
    public async Task A_throwing_handler_faults_only_its_subscription()
    {
        await using var f = await BrokerFixture.StartAsync();
        var broker = f.Broker;
        broker.CreateTopic("jobs");
        var thrower = new Thrower(failAt: 3);
        using var bad = broker.SubscribeInline("jobs", thrower);
        var good = new ThreadRecorder();
        using var fine = broker.SubscribeInline("jobs", good);
        using var pulled = broker.Subscribe("jobs");

        for (var i = 0; i < 10; i++)
        {
            await broker.PublishAsync("jobs", BrokerFixture.Utf8($"j{i}"));
        }

        await Eventually.TrueAsync(() => bad.Fault is not null, "the throwing subscription is faulted");
        Assert.IsType<InvalidOperationException>(bad.Fault);
        await Eventually.TrueAsync(() => good.Count == 10, "the other inline subscription got everything");

        // The broker keeps confirming publishes; the faulted subscription receives nothing more.
        var seenByThrower = thrower.Seen;
        Assert.Equal(4, seenByThrower);
        var offset = await broker.PublishAsync("jobs", BrokerFixture.Utf8("after"));
        Assert.Equal(10, offset);
        await Eventually.TrueAsync(() => good.Count == 11, "the other inline subscription got the message after the fault");
        var collected = new Collected();
        var recorder = new Recorder(collected);
        await Eventually.TrueAsync(() => pulled.Fetch(100, ref recorder) >= 0 && collected.Items.Count == 11, "a pulling subscription got everything");
        Assert.Equal(seenByThrower, thrower.Seen);
    }

    [Fact]
    public async Task Disposing_stops_delivery_even_from_inside_the_handler_mid_batch()
    {
        await using var f = await BrokerFixture.StartAsync();
        var broker = f.Broker;
        broker.CreateTopic("once");

        // Published first, so the catch-up hands all five to the handler in one batch.
        for (var i = 0; i < 5; i++)
        {
            await broker.PublishAsync("once", BrokerFixture.Utf8($"x{i}"));
        }

        var selfDisposing = new SelfDisposing();
        selfDisposing.Subscription = broker.SubscribeInline("once", selfDisposing, new SubscriptionOptions { Start = StartPosition.Earliest });
        await Eventually.TrueAsync(() => selfDisposing.Seen >= 1, "the first message delivered");

        // Nothing after the dispose, not even the rest of that batch; the broker goes on serving.
        var other = new ThreadRecorder();
        using var after = broker.SubscribeInline("once", other);
        await broker.PublishAsync("once", BrokerFixture.Utf8("later"));
        await Eventually.TrueAsync(() => other.Count == 1, "a later subscription still works");
        Assert.Equal(1, selfDisposing.Seen);
        Assert.Throws<ObjectDisposedException>(() => selfDisposing.Subscription.Commit("once", 0));
    }

    [Fact]
    public async Task A_slow_catch_up_never_holds_up_publishers()
    {
        await using var f = await BrokerFixture.StartAsync();
        var broker = f.Broker;
        broker.CreateTopic("backlog");
        broker.CreateTopic("fence");
        await broker.PublishAsync("backlog", BrokerFixture.Utf8("old"));

        // "old" is confirmed before its batch ends, and the batch end wakes the topic's readers. Subscribing in
        // between would let that wake-up deliver "old" on the journaler thread itself, and the blocking handler would
        // then hold up the pipeline (an inline handler runs there by contract). A publish to another topic, awaited,
        // comes from a later batch: once it is confirmed, the "backlog" wake-up is over and only the catch-up delivers.
        await broker.PublishAsync("fence", BrokerFixture.Utf8("fence"));
        using var blocking = new Blocking();
        using var sub = broker.SubscribeInline("backlog", blocking, new SubscriptionOptions { Start = StartPosition.Earliest });
        Assert.True(blocking.Entered.Wait(Eventually.DefaultTimeout), "the catch-up entered the handler");

        // The catch-up is stuck in the handler on a pool thread. The journaler must leave the new messages to it
        // rather than wait for it: every publish is still confirmed.
        for (var i = 0; i < 3; i++)
        {
            await Eventually.Completes(broker.PublishAsync("backlog", BrokerFixture.Utf8($"new{i}")).AsTask(), TimeSpan.FromSeconds(30));
        }

        blocking.Release.Set();
        await Eventually.TrueAsync(() => blocking.Seen == 4, "the catch-up went on to the new messages");
    }

    [Fact]
    public async Task Disposing_from_another_thread_waits_for_a_running_delivery()
    {
        await using var f = await BrokerFixture.StartAsync();
        var broker = f.Broker;
        broker.CreateTopic("slow");
        await broker.PublishAsync("slow", BrokerFixture.Utf8("a"));
        await broker.PublishAsync("slow", BrokerFixture.Utf8("b"));
        using var blocking = new Blocking();

        // Both messages go to the handler in one catch-up batch; it stops in the first.
        var sub = broker.SubscribeInline("slow", blocking, new SubscriptionOptions { Start = StartPosition.Earliest });
        Assert.True(blocking.Entered.Wait(Eventually.DefaultTimeout), "the handler was entered");

        var dispose = Task.Run(sub.Dispose);
        await Eventually.TrueAsync(() => ThrowsDisposed(sub), "the dispose has begun");
        Assert.False(dispose.IsCompleted, "dispose returned while the handler was still reading the journal");

        // Released, the delivery goes on reading its batch: the cursors must still be there (no fault), and it hands
        // nothing more to the handler.
        blocking.Release.Set();
        await Eventually.Completes(dispose);
        Assert.Null(sub.Fault);
        Assert.Equal(1, blocking.Seen);
        await broker.PublishAsync("slow", BrokerFixture.Utf8("c"));
        var probe = new ThreadRecorder();
        using var after = broker.SubscribeInline("slow", probe, new SubscriptionOptions { Start = StartPosition.Earliest });
        await Eventually.TrueAsync(() => probe.Count == 3, "a new subscription reads all three");
        Assert.Equal(1, blocking.Seen);
    }

    private static bool ThrowsDisposed(Subscription sub)
    {
        try
        {
            sub.Commit("slow", 0);
            return false;
        }
        catch (ObjectDisposedException)
        {
            return true;
        }
        catch (BrokerException)
        {
            return false; // not durable: still open
        }
    }

    [Fact]
    public async Task A_batch_the_header_filters_empty_does_not_stop_the_catch_up()
    {
        await using var f = await BrokerFixture.StartAsync();
        var broker = f.Broker;
        broker.CreateTopic("fx");
        var h = new MessageHeaders();

        // More non-matching messages than one fetch batch, then a matching one, and then nothing more.
        for (var i = 0; i < 600; i++)
        {
            await broker.PublishAsync("fx", BrokerFixture.Utf8($"usd{i}"), headers: h.Clear().Add("ccy", "USD"));
        }

        await broker.PublishAsync("fx", BrokerFixture.Utf8("eur"), headers: h.Clear().Add("ccy", "EUR"));
        var handler = new ThreadRecorder();
        using var sub = broker.SubscribeInline("fx", handler, new SubscriptionOptions
        {
            Start = StartPosition.Earliest,
            BatchSize = 256,
            HeaderFilters = new Dictionary<string, string> { ["ccy"] = "EUR" },
        });
        await Eventually.TrueAsync(() => handler.Count == 1, "the matching message after the filtered ones is delivered");
        Assert.Equal(("fx", 600L, "eur"), (handler.Snapshot()[0].Topic, handler.Snapshot()[0].Offset, handler.Snapshot()[0].Payload));
        await Eventually.TrueAsync(() => sub.Filtered == 600, "the others were counted as filtered");
    }

    [Fact]
    public async Task A_wildcard_inline_subscription_follows_topics_created_later()
    {
        await using var f = await BrokerFixture.StartAsync();
        var broker = f.Broker;
        var handler = new ThreadRecorder();
        using var sub = broker.SubscribeInline("fx.>", handler, new SubscriptionOptions { Start = StartPosition.Earliest });
        await broker.PublishAsync("fx.eur.usd", BrokerFixture.Utf8("1.08"));
        await broker.PublishAsync("fx.gbp.usd", BrokerFixture.Utf8("1.27"));
        await broker.PublishAsync("rates.eur", BrokerFixture.Utf8("ignored"));
        await Eventually.TrueAsync(() => handler.Count == 2, "both fx topics delivered");
        Assert.Equal(["fx.eur.usd", "fx.gbp.usd"], handler.Snapshot().Select(i => i.Topic).Order().ToArray());
    }

    /// <summary>Records what it sees and on which thread; counts calls that overlap (there must be none).</summary>
    private sealed class ThreadRecorder : IMessageHandler
    {
        private readonly ConcurrentQueue<(string Topic, long Offset, string Payload, string? Thread)> _items = new();
        private int _inside;

        public int Overlaps;

        public int Count => _items.Count;

        public void OnMessage(scoped in MessageView message)
        {
            if (Interlocked.Exchange(ref _inside, 1) != 0)
            {
                Interlocked.Increment(ref Overlaps);
            }

            _items.Enqueue((message.Topic, message.Offset, Encoding.UTF8.GetString(message.Payload), Thread.CurrentThread.Name));
            Volatile.Write(ref _inside, 0);
        }

        public List<(string Topic, long Offset, string Payload, string? Thread)> Snapshot() => [.. _items];
    }

    private sealed class Thrower(int failAt) : IMessageHandler
    {
        private int _seen;

        public int Seen => Volatile.Read(ref _seen);

        public void OnMessage(scoped in MessageView message)
        {
            if (Interlocked.Increment(ref _seen) > failAt)
            {
                throw new InvalidOperationException($"handler failed at offset {message.Offset}");
            }
        }
    }

    private sealed class SelfDisposing : IMessageHandler
    {
        private int _seen;
        private Subscription? _subscription;

        /// <summary>Set right after subscribing; the handler waits for it (the catch-up may start first).</summary>
        public Subscription Subscription
        {
            get => Volatile.Read(ref _subscription)!;
            set => Volatile.Write(ref _subscription, value);
        }

        public int Seen => Volatile.Read(ref _seen);

        public void OnMessage(scoped in MessageView message)
        {
            Interlocked.Increment(ref _seen);
            Assert.True(SpinWait.SpinUntil(() => Volatile.Read(ref _subscription) is not null, Eventually.DefaultTimeout));
            Subscription.Dispose();
        }
    }

    /// <summary>Signals <see cref="Entered"/> and holds every call until <see cref="Release"/> is set.</summary>
    private sealed class Blocking : IMessageHandler, IDisposable
    {
        private int _seen;

        public ManualResetEventSlim Entered { get; } = new();

        public ManualResetEventSlim Release { get; } = new();

        public int Seen => Volatile.Read(ref _seen);

        public void OnMessage(scoped in MessageView message)
        {
            Interlocked.Increment(ref _seen);
            Entered.Set();
            Release.Wait(Eventually.DefaultTimeout);
        }

        public void Dispose()
        {
            Release.Set(); // never leave the pipeline thread stuck in a failed test
            Entered.Dispose();
            Release.Dispose();
        }
    }
}
