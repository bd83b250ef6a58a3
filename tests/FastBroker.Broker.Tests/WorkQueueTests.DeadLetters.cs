using System.Collections.Concurrent;
using System.Text;
using FastBroker.Testing;
using static FastBroker.BrokerTests.Consume;

namespace FastBroker.BrokerTests;

// Dead letters: a message out of deliveries goes to the group's dead-letter topic, or is dropped when it can never be stored there.
public partial class WorkQueueTests
{
    [Fact]
    public async Task A_dead_letter_the_dlq_topic_refuses_is_kept_and_retried_until_it_is_stored()
    {
        var log = new ConcurrentQueue<string>();
        await using var f = await BrokerFixture.StartAsync(o => o with { AutoCreateTopics = false, Log = log.Enqueue });
        var b = f.Broker;
        b.CreateTopic("jobs");
        using var member = b.JoinGroup("jobs", "workers");
        await b.PublishAsync("jobs", Encoding.UTF8.GetBytes("poison"));
        var got = FetchOne(member, "the job is delivered");

        // jobs.dlq does not exist and may not be created on first use: the dead letter cannot be stored yet.
        Assert.Equal(WorkQueueOutcome.DeadLettered, member.Nack(0, got.DeliveryCount, requeue: false, error: "unparseable"));
        await Eventually.TrueAsync(() => b.GetSnapshot().Groups.Single().DeadLettered == 1, "the group counts it");
        Assert.Equal(0, b.RetentionFloorOf("jobs")); // not done on disk: retention keeps it, a restart redelivers it
        await Eventually.TrueAsync(() => log.Any(l => l.Contains("offset 0 refused by 'jobs.dlq' (UnknownTopic", StringComparison.Ordinal)), "the refusal is logged");
        Assert.Equal(1, b.GetSnapshot().Groups.Single().DeadLettersPending);

        b.CreateTopic("jobs.dlq");
        await Eventually.TrueAsync(() => b.GetSnapshot().Topics.Single(t => t.Name == "jobs.dlq").Head == 1, "the retry stores the dead letter");
        await Eventually.TrueAsync(() => b.RetentionFloorOf("jobs") == 1, "then the job is done on disk");
        using var dlq = b.Subscribe("jobs.dlq", new SubscriptionOptions { Start = StartPosition.Earliest });
        await foreach (var m in dlq.ReadAllAsync(new CancellationTokenSource(Eventually.DefaultTimeout).Token))
        {
            Assert.Equal(("poison", "unparseable"), (m.PayloadText, m.HeaderText("fb-dlq-error")));
            break;
        }
    }

    [Fact]
    public async Task A_dead_letter_whose_last_delivery_timed_out_says_so_and_keeps_the_earlier_nacks_error()
    {
        await using var f = await BrokerFixture.StartAsync();
        var b = f.Broker;
        using var member = b.JoinGroup("slow", "workers", GroupOptions.Default with { Prefetch = 1, MaxDeliveries = 2, VisibilityTimeout = TimeSpan.FromMilliseconds(200) });
        await b.PublishAsync("slow", Encoding.UTF8.GetBytes("job"));
        var first = FetchOne(member, "the first delivery");
        Assert.Equal(WorkQueueOutcome.Requeued, member.Nack(first.Offset, first.DeliveryCount, requeue: true, error: "database down"));

        // The second (last) delivery is fetched and never settled: its visibility timeout ends it.
        var second = FetchOne(member, "the second delivery");
        Assert.Equal(2, second.DeliveryCount);
        using var dlq = b.Subscribe("slow.dlq", new SubscriptionOptions { Start = StartPosition.Earliest });
        await foreach (var m in dlq.ReadAllAsync(new CancellationTokenSource(Eventually.DefaultTimeout).Token))
        {
            var error = m.HeaderText("fb-dlq-error");
            Assert.Contains("visibility timeout", error, StringComparison.Ordinal);
            Assert.Contains("database down", error, StringComparison.Ordinal);
            Assert.Equal(2L, BitConverter.ToInt64(m.Header("fb-dlq-deliveries")!));
            break;
        }
    }

    [Fact]
    public async Task A_dead_letter_of_a_message_at_the_size_limit_is_stored_with_its_history_and_the_group_moves_on()
    {
        await using var f = await BrokerFixture.StartAsync();
        var b = f.Broker;
        using var member = b.JoinGroup("big", "workers", GroupOptions.Default with { MaxDeliveries = 1 });

        // Exactly the topic's limit: the dead-letter headers make the copy larger than that.
        var payload = new byte[b.Options.DefaultTopicOptions.MaxMessageBytes];
        payload.AsSpan().Fill((byte)'x');
        await b.PublishAsync("big", payload);
        var job = FetchOne(member, "the full-size job is delivered");
        Assert.Equal(WorkQueueOutcome.DeadLettered, member.Nack(job.Offset, job.DeliveryCount, requeue: false, error: "cannot handle it"));

        using var dlq = b.Subscribe("big.dlq", new SubscriptionOptions { Start = StartPosition.Earliest });
        await foreach (var m in dlq.ReadAllAsync(new CancellationTokenSource(Eventually.DefaultTimeout).Token))
        {
            Assert.Equal(payload, m.Payload.ToArray());
            Assert.Equal(("big", "workers", "cannot handle it"), (m.HeaderText("fb-dlq-topic"), m.HeaderText("fb-dlq-group"), m.HeaderText("fb-dlq-error")));
            Assert.Equal((0L, 1L), (BitConverter.ToInt64(m.Header("fb-dlq-offset")!), BitConverter.ToInt64(m.Header("fb-dlq-deliveries")!)));
            break;
        }

        // Done on disk, so the group's window moves on: new jobs keep flowing.
        await Eventually.TrueAsync(() => b.RetentionFloorOf("big") == 1, "the dead-lettered job is done on disk");
        await b.PublishAsync("big", Encoding.UTF8.GetBytes("next"));
        var next = FetchOne(member, "the next job is delivered");
        Assert.Equal((1L, "next"), (next.Offset, next.Payload));
        Assert.True(member.Ack(next.Offset, next.DeliveryCount));
        await Eventually.TrueAsync(() => b.RetentionFloorOf("big") == 2, "the next job is done on disk");
    }

    [Fact]
    public async Task A_dead_letter_the_dlq_topic_can_never_store_is_dropped_counted_and_logged_and_the_group_moves_on()
    {
        var log = new ConcurrentQueue<string>();
        await using var f = await BrokerFixture.StartAsync(o => o with { Log = log.Enqueue });
        var b = f.Broker;

        // A dead-letter topic made by hand with smaller segments than the source topic's messages.
        b.CreateTopic("media", TopicOptions.Default with { SegmentBytes = 4 << 20, MaxMessageBytes = 1 << 20 });
        b.CreateTopic("media.dlq", TopicOptions.Default with { SegmentBytes = 64 << 10, MaxMessageBytes = 16 << 10 });
        using var member = b.JoinGroup("media", "encoders", GroupOptions.Default with { MaxDeliveries = 1 });
        await b.PublishAsync("media", new byte[256 << 10]);
        var job = FetchOne(member, "the large job is delivered");
        Assert.Equal(WorkQueueOutcome.DeadLettered, member.Nack(job.Offset, job.DeliveryCount, requeue: false));

        await Eventually.TrueAsync(
            () => b.RetentionFloorOf("media") == 1 && b.GetSnapshot().Groups.Single().DeadLettersPending == 0,
            "given up on: the job is done on disk, not retried for ever");
        var group = b.GetSnapshot().Groups.Single();
        Assert.Equal((1L, 1L), (group.DeadLettered, group.DeadLettersDropped));
        Assert.Equal(0, b.GetSnapshot().Topics.Single(t => t.Name == "media.dlq").Head);
        Assert.Contains(log, l => l.Contains("offset 0 DROPPED: 'media.dlq' can never store it (MessageTooLarge", StringComparison.Ordinal));

        await b.PublishAsync("media", Encoding.UTF8.GetBytes("next"));
        var next = FetchOne(member, "the group goes on");
        Assert.True(member.Ack(next.Offset, next.DeliveryCount));
        await Eventually.TrueAsync(() => b.RetentionFloorOf("media") == 2, "the next job is done on disk");
    }
}
