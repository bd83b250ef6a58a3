using System.Collections.Concurrent;
using System.Runtime.CompilerServices;
using System.Text;
using FastBroker.Testing;
using static FastBroker.BrokerTests.Consume;

namespace FastBroker.BrokerTests;

/// <summary>
/// A dead letter whose publish fails with an exception the broker does not name (not a <see cref="BrokerException"/>):
/// here the dead-letter topic's creation on first use throws an <see cref="InvalidOperationException"/> at its first
/// step on disk (<c>TopicRegistry.FileStep</c>; an I/O error there is a <see cref="BrokerErrorCode.StorageError"/>
/// refusal, <c>TopicCreationErrorTests</c>). It is retried like a refusal that may pass, said in the log with its type,
/// and the group's floor waits until it is stored: not lost, not silent.
/// </summary>
public class DeadLetterFailureTests
{
    [Fact]
    public async Task A_dead_letter_whose_publish_throws_an_unexpected_exception_once_is_logged_once_retried_and_stored_with_its_history()
    {
        var log = new ConcurrentQueue<string>();
        await using var f = await BrokerFixture.StartAsync(o => o with { Log = log.Enqueue });
        var b = f.Broker;
        var attempts = FailDeadLetterTopicCreation(f, attempt => attempt == 1, "not expected (test)");

        using var member = b.JoinGroup("jobs", "workers", GroupOptions.Default with { MaxDeliveries = 1 });
        await b.PublishAsync("jobs", Encoding.UTF8.GetBytes("poison"), Encoding.UTF8.GetBytes("k1"), new MessageHeaders().Add("trace", "t-42"));
        var job = FetchOne(member, "the job is delivered");
        Assert.Equal(WorkQueueOutcome.DeadLettered, member.Nack(job.Offset, job.DeliveryCount, requeue: false, error: "unparseable"));

        await Eventually.TrueAsync(() => b.GetSnapshot().Topics.Any(t => t.Name == "jobs.dlq" && t.Head == 1), "the retry stores the dead letter");
        await Eventually.TrueAsync(() => b.RetentionFloorOf("jobs") == 1, "then the job is done on disk");
        Assert.Equal(2, Volatile.Read(ref attempts.Value)); // the first creation threw, the retry's went through
        var group = b.GetSnapshot().Groups.Single();
        Assert.Equal((1L, 0L, 0), (group.DeadLettered, group.DeadLettersDropped, group.DeadLettersPending));

        using var dlq = b.Subscribe("jobs.dlq", new SubscriptionOptions { Start = StartPosition.Earliest });
        await foreach (var m in dlq.ReadAllAsync(new CancellationTokenSource(Eventually.DefaultTimeout).Token))
        {
            Assert.Equal(("poison", "k1", "t-42"), (m.PayloadText, Encoding.UTF8.GetString(m.Key.Span), m.HeaderText("trace")));
            Assert.Equal(("jobs", "workers", "unparseable"), (m.HeaderText("fb-dlq-topic"), m.HeaderText("fb-dlq-group"), m.HeaderText("fb-dlq-error")));
            Assert.Equal((0L, 1L), (BitConverter.ToInt64(m.Header("fb-dlq-offset")!), BitConverter.ToInt64(m.Header("fb-dlq-deliveries")!)));
            break;
        }

        var failures = log.Where(l => l.Contains("dead letter of offset 0 not stored in 'jobs.dlq' (InvalidOperationException: not expected (test)); retrying", StringComparison.Ordinal)).ToList();
        Assert.Single(failures);
        Assert.Contains(log, l => l.Contains("dead letter of offset 0 stored in 'jobs.dlq' after 2 attempts", StringComparison.Ordinal));
    }

    [Fact]
    public async Task A_broker_closed_while_a_dead_letter_keeps_failing_unexpectedly_closes_and_ends_the_retries()
    {
        var log = new ConcurrentQueue<string>();
        await using var f = await BrokerFixture.StartAsync(o => o with { Log = log.Enqueue });
        var b = f.Broker;
        var attempts = FailDeadLetterTopicCreation(f, _ => true, "still broken (test)");

        using var member = b.JoinGroup("jobs", "workers", GroupOptions.Default with { MaxDeliveries = 1 });
        await b.PublishAsync("jobs", Encoding.UTF8.GetBytes("poison"));
        var job = FetchOne(member, "the job is delivered");
        Assert.Equal(WorkQueueOutcome.DeadLettered, member.Nack(job.Offset, job.DeliveryCount, requeue: false, error: "unparseable"));

        // Retried (100 ms, then 200 ms, 400 ms), said once: the same cause again is not logged again within a minute.
        await Eventually.TrueAsync(() => Volatile.Read(ref attempts.Value) >= 3, "the dead letter is retried");
        Assert.Single(log, l => l.Contains("dead letter of offset 0 not stored in 'jobs.dlq' (InvalidOperationException: still broken (test)); retrying, the group's floor waits at it (attempt 1)", StringComparison.Ordinal));
        var group = member.RuntimeGroup;
        Assert.Equal(1, group.Snapshot().DeadLettersPending);
        Assert.Equal(0, b.RetentionFloorOf("jobs")); // not done on disk: retention keeps it, a restart redelivers it

        // The close does not wait for the retries, and ends them: the task gives the message back and its pending count
        // last, so 0 pending means it ended (it catches everything, so there is nothing left unobserved).
        await b.DisposeAsync().AsTask().WaitAsync(Eventually.DefaultTimeout);
        await Eventually.TrueAsync(() => group.Snapshot().DeadLettersPending == 0, "the dead-letter task ended, its message given back");
        Assert.DoesNotContain(log, l => l.Contains("stored in 'jobs.dlq' after", StringComparison.Ordinal));

        // Not lost: a restart delivers the job that was never dead-lettered again.
        await f.RestartAsync(o => o with { Log = log.Enqueue });
        using var again = f.Broker.JoinGroup("jobs", "workers");
        var redelivered = FetchOne(again, "the job not dead-lettered is delivered again after the restart");
        Assert.Equal((0L, "poison"), (redelivered.Offset, redelivered.Payload));
    }

    /// <summary>
    /// Creates topic <c>jobs</c>, then makes each creation of <c>jobs.dlq</c> (on first use, by the dead-lettering) count
    /// an attempt and throw <paramref name="message"/> when <paramref name="throwOn"/> says so for that attempt's number.
    /// </summary>
    private static StrongBox<int> FailDeadLetterTopicCreation(BrokerFixture f, Func<int, bool> throwOn, string message)
    {
        f.Broker.CreateTopic("jobs");
        var attempts = new StrongBox<int>();
        var dlqDirectory = $"create directory {Path.Combine(f.DataDirectory, "topics", "jobs.dlq")}";
        f.Broker.Topics.FileStep = what =>
        {
            if (what == dlqDirectory && throwOn(Interlocked.Increment(ref attempts.Value)))
            {
                throw new InvalidOperationException(message);
            }
        };
        return attempts;
    }
}
