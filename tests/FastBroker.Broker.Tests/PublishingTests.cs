using System.Diagnostics.Metrics;
using System.Text;
using FastBroker.Engine;
using FastBroker.Testing;

namespace FastBroker.BrokerTests;

public class PublishingTests
{
    [Fact]
    public async Task Batches_are_published_in_order_with_dense_offsets()
    {
        await using var f = await BrokerFixture.StartAsync();
        var b = f.Broker;
        var batch = Enumerable.Range(0, 10).Select(i => (ReadOnlyMemory<byte>)Encoding.UTF8.GetBytes($"b{i}")).ToArray();
        Assert.True(b.TryPublishBatch("batched", batch));
        var last = await b.PublishBatchAsync("batched", batch.Select(m => m).ToList());
        Assert.Equal(19, last);

        using var sub = b.Subscribe("batched", new SubscriptionOptions { Start = StartPosition.Earliest });
        var c = new Collected();
        var r = new Recorder(c);
        Eventually.True(() =>
        {
            sub.Fetch(100, ref r);
            return c.Items.Count == 20;
        }, "both batches delivered");
        Assert.Equal(Enumerable.Range(0, 20).Select(i => $"b{i % 10}"), c.Items.Select(x => x.Payload));
    }

    [Fact]
    public async Task A_batch_larger_than_the_free_ring_is_refused_whole()
    {
        await using var f = await BrokerFixture.StartAsync(o => o with { InputRingSize = 8 });
        f.Broker.CreateTopic("small-ring");
        await Eventually.TrueAsync(() => f.Broker.Ring.HasAvailableCapacity(f.Broker.Ring.BufferSize), "the input ring drains");
        Assert.False(TryBatchOfTwoWithOneSlotFree(f.Broker, "small-ring"));
        Assert.Equal(0, await f.Broker.PublishAsync("small-ring", new byte[1])); // nothing of the batch stored
    }

    /// <summary>Holds 7 of the 8 slots with claims of at most <see cref="Broker.MaxPublishClaim"/> (2), as other producers would, and tries a batch of 2.</summary>
    private static bool TryBatchOfTwoWithOneSlotFree(Broker b, string topic)
    {
        Assert.True(b.TryBeginPublish(2, out var c1));
        Assert.True(b.TryBeginPublish(2, out var c2));
        Assert.True(b.TryBeginPublish(2, out var c3));
        Assert.True(b.TryBeginPublish(1, out var c4));
        try
        {
            return b.TryPublishBatch(topic, new ReadOnlyMemory<byte>[] { new byte[1], new byte[1] });
        }
        finally
        {
            c1.Dispose();
            c2.Dispose();
            c3.Dispose();
            c4.Dispose();
        }
    }

    [Fact]
    public async Task Push_consumption_with_a_struct_handler_delivers_everything()
    {
        await using var f = await BrokerFixture.StartAsync();
        var b = f.Broker;
        using var sub = b.Subscribe("pushed", new SubscriptionOptions { Start = StartPosition.Earliest });
        var seen = new Collected();
        using var cts = new CancellationTokenSource();
        var consuming = sub.ConsumeAsync(new LockedRecorder(seen), cts.Token);
        for (var i = 0; i < 500; i++)
        {
            await b.PublishAsync("pushed", Encoding.UTF8.GetBytes($"p{i}"));
        }

        Eventually.True(() =>
        {
            lock (seen)
            {
                return seen.Items.Count == 500;
            }
        }, "push consumer receives all 500");
        await cts.CancelAsync();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => Eventually.Completes(consuming));
        Assert.Equal(Enumerable.Range(0, 500).Select(i => (long)i), seen.Items.Select(x => x.Offset));
    }

    [Fact]
    public async Task Request_reply_round_trips_and_times_out_without_a_responder()
    {
        await using var f = await BrokerFixture.StartAsync();
        var b = f.Broker;
        using var requests = b.Subscribe("svc.echo", new SubscriptionOptions { Start = StartPosition.Latest });
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        var responder = Task.Run(async () =>
        {
            await foreach (var m in requests.ReadAllAsync(cts.Token))
            {
                await b.ReplyAsync(m, Encoding.UTF8.GetBytes("echo:" + m.PayloadText));
                return;
            }
        });

        var reply = await b.RequestAsync("svc.echo", Encoding.UTF8.GetBytes("ping"), TimeSpan.FromSeconds(30));
        Assert.Equal("echo:ping", reply.PayloadText);
        await Eventually.Completes(responder);

        var ex = await Assert.ThrowsAsync<BrokerException>(() => b.RequestAsync("svc.nobody", Encoding.UTF8.GetBytes("hello?"), TimeSpan.FromMilliseconds(200)));
        Assert.Equal(BrokerErrorCode.Timeout, ex.Code);
    }

    [Theory]
    [InlineData(-5L)] // half a microsecond below 0: was sent, then timed out at once
    [InlineData(-50_000L)] // -5 ms
    [InlineData(long.MaxValue)]
    public async Task A_request_whose_timeout_no_timer_can_take_is_refused_before_it_is_sent(long ticks)
    {
        await using var f = await BrokerFixture.StartAsync();
        var b = f.Broker;
        b.CreateTopic("svc.slow");

        // Before, the request was published, and only then did the timer refuse the timeout with an
        // ArgumentOutOfRangeException: the service got a request whose caller had already failed.
        var ex = await Assert.ThrowsAsync<BrokerException>(() => b.RequestAsync("svc.slow", Encoding.UTF8.GetBytes("x"), TimeSpan.FromTicks(ticks)));
        Assert.Equal(BrokerErrorCode.InvalidArgument, ex.Code);
        Assert.Equal(0, b.GetSnapshot().Topics.Single(t => t.Name == "svc.slow").Head);
        Assert.Empty(b.GetSnapshot().Subscriptions);
    }

    [Fact]
    public async Task A_request_whose_publish_is_not_confirmed_in_time_fails_with_Timeout_while_the_publish_waits()
    {
        // A topic acknowledged by the standby, whose acks the test gives: the request's publish waits for one that
        // does not come (the gate's own timeout is a minute).
        using var dir = new TempDirectory("fastbroker-request");
        var gate = new ReplicationGate(TimeSpan.FromMinutes(1), degradeToLocal: false);
        await using var b = Broker.Open(BrokerFixture.Options(dir.Path) with { DefaultTopicOptions = TopicOptions.Default with { Acks = AckMode.StandbyReceived, SegmentBytes = 4L << 20 } }, gate);
        gate.SetStandbyAttached(true);
        b.CreateTopic("svc.replicated");
        Assert.True(b.Topics.TryGet("svc.replicated", out var topic));

        // Before, the timeout started once the publish was confirmed: the request waited out the gate (a minute).
        var request = b.RequestAsync("svc.replicated", Encoding.UTF8.GetBytes("x"), TimeSpan.FromMilliseconds(200));
        var ex = await Assert.ThrowsAsync<BrokerException>(() => Eventually.Completes(request, TimeSpan.FromSeconds(30)));
        Assert.Equal(BrokerErrorCode.Timeout, ex.Code);
        Assert.Contains("not confirmed", ex.Message, StringComparison.Ordinal);
        // The publish is held by the gate: the dispatcher lists it there once it has taken it from the ring, which a
        // loaded machine may delay past the request's 200 ms, so it is waited for (it stays held: no ack is given).
        await Eventually.TrueAsync(() => topic.Replica?.Pending == 1, "the request's publish held by the gate");
        Assert.Empty(b.GetSnapshot().Subscriptions); // the reply subscription is closed

        // The request was stored all the same, and is confirmed once the standby acknowledges it.
        using var requests = b.Subscribe("svc.replicated", new SubscriptionOptions { Start = StartPosition.Earliest });
        var c = new Collected();
        var r = new Recorder(c);
        Eventually.True(() =>
        {
            requests.Fetch(10, ref r);
            return c.Items.Count == 1;
        }, "the request stored");
        var batch = new ConfirmBatch();
        gate.OnStandbyAck(topic, 1, 1, batch);
        batch.End();
        await Eventually.TrueAsync(() => topic.Replica!.Pending == 0, "the publish confirmed");
    }

    [Fact]
    public async Task Counters_and_lag_are_exposed_through_metrics_and_the_snapshot()
    {
        var meterName = "FastBroker.Test." + Guid.NewGuid().ToString("N");
        await using var f = await BrokerFixture.StartAsync(o => o with { MeterName = meterName });
        var b = f.Broker;
        using var sub = b.Subscribe("metered", new SubscriptionOptions { Start = StartPosition.Earliest });
        for (var i = 0; i < 7; i++)
        {
            await b.PublishAsync("metered", new byte[10]);
        }

        var snapshot = b.GetSnapshot();
        var topic = snapshot.Topics.Single(t => t.Name == "metered");
        Assert.Equal(7, topic.Head);
        Assert.Equal(7, topic.Published);
        Assert.Equal(70, topic.PublishedBytes);
        Assert.Equal(7, snapshot.Subscriptions.Single().Lag);

        var measured = new Dictionary<string, long>();
        using var listener = new MeterListener();
        listener.InstrumentPublished = (instrument, l) =>
        {
            if (instrument.Meter.Name == meterName)
            {
                l.EnableMeasurementEvents(instrument);
            }
        };
        listener.SetMeasurementEventCallback<long>((instrument, value, tags, _) =>
        {
            foreach (var tag in tags)
            {
                if ((string?)tag.Value == "metered")
                {
                    measured[instrument.Name] = value;
                }
            }
        });
        listener.Start();
        listener.RecordObservableInstruments();
        Assert.Equal(7, measured["fastbroker.topic.published"]);
        Assert.Equal(7, measured["fastbroker.topic.head"]);
        Assert.Equal(7, measured["fastbroker.subscription.lag"]);
    }
}
