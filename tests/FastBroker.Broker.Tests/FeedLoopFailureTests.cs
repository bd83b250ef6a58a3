using System.Collections.Concurrent;
using FastBroker.Engine;
using FastBroker.Testing;

namespace FastBroker.BrokerTests;

/// <summary>
/// A work-queue group's feed loop pumps the group each time its topic gets messages. One that threw anything unexpected
/// ended silently, leaving the group to the broker's timer (one pump per timer period) with nothing logged; it is now
/// logged, limited by text, and the loop runs again after a wait that doubles with each failure in a row, bounded.
/// </summary>
public class FeedLoopFailureTests
{
    [Fact]
    public async Task A_feed_loop_that_throws_once_is_logged_and_runs_again()
    {
        var log = new ConcurrentQueue<string>();
        await using var f = await BrokerFixture.StartAsync(o => o with { Log = log.Enqueue });
        var b = f.Broker;
        var calls = 0;
        b.FeedLoopHook = name =>
        {
            if (name == "g" && Interlocked.Increment(ref calls) == 1)
            {
                throw new InvalidOperationException("test: the feed loop's pump failed");
            }
        };

        using var member = b.JoinGroup("feed-once", "g", GroupOptions.Default with { Prefetch = 10 });
        var group = member.RuntimeGroup;
        try
        {
            await b.PublishAsync("feed-once", BrokerFixture.Utf8("m1"));
            await Eventually.TrueAsync(() => Volatile.Read(ref calls) >= 1, "the feed loop wakes for the message");
            await Eventually.TrueAsync(
                () => log.Any(l => l.Contains("group 'g': its feed loop failed (InvalidOperationException: test: the feed loop's pump failed)", StringComparison.Ordinal)),
                "the feed loop's failure is logged");
            Assert.Equal(1, group.FeedLoopFailures);

            // It runs again: it pumps once after its wait, and wakes again for the next message.
            await Eventually.TrueAsync(() => Volatile.Read(ref calls) >= 2 && group.FeedLoopRunning, "the feed loop runs again after its failure");
            var before = Volatile.Read(ref calls);
            await b.PublishAsync("feed-once", BrokerFixture.Utf8("m2"));
            await Eventually.TrueAsync(() => Volatile.Read(ref calls) > before, "the feed loop wakes for the next message");

            var got = new Collected();
            var r = new Recorder(got);
            await Eventually.TrueAsync(() => { member.Fetch(10, ref r); return got.Items.Count == 2; }, "both messages are delivered");
            Assert.Equal(1, group.FeedLoopFailures);
            Assert.Single(log, l => l.Contains("feed loop failed", StringComparison.Ordinal));
        }
        finally
        {
            b.FeedLoopHook = null;
        }
    }

    [Fact]
    public async Task A_feed_loop_that_keeps_failing_is_logged_once_per_interval_and_restarted_with_a_growing_bounded_wait()
    {
        Assert.Equal(WorkQueueGroup.FeedLoopFirstBackoff, WorkQueueGroup.FeedLoopBackoff(1));
        Assert.Equal(WorkQueueGroup.FeedLoopFirstBackoff * 2, WorkQueueGroup.FeedLoopBackoff(2));
        Assert.Equal(WorkQueueGroup.FeedLoopMaxBackoff, WorkQueueGroup.FeedLoopBackoff(12));
        Assert.Equal(WorkQueueGroup.FeedLoopMaxBackoff, WorkQueueGroup.FeedLoopBackoff(int.MaxValue));

        var log = new ConcurrentQueue<string>();
        await using var f = await BrokerFixture.StartAsync(o => o with { Log = log.Enqueue });
        var b = f.Broker;
        b.FeedLoopLogInterval = TimeSpan.FromDays(1); // every line after the first within the interval is held back
        var failing = 1;
        var calls = 0;
        b.FeedLoopHook = name =>
        {
            if (name != "g")
            {
                return;
            }

            Interlocked.Increment(ref calls);
            if (Volatile.Read(ref failing) == 1)
            {
                throw new IOException("test: the feed failed again");
            }
        };

        using var member = b.JoinGroup("feed-again", "g", GroupOptions.Default with { Prefetch = 10 });
        var group = member.RuntimeGroup;
        try
        {
            await b.PublishAsync("feed-again", BrokerFixture.Utf8("m1"));
            await Eventually.TrueAsync(() => group.FeedLoopFailures >= 6, "six failures of the feed loop, each restarted");
            var lines = log.Where(l => l.Contains("feed loop failed", StringComparison.Ordinal)).ToList();
            Assert.True(lines.Count == 1, $"{group.FeedLoopFailures} failures of the same text within the log interval, one line expected: [{string.Join(" | ", lines)}]");
            var backoff = group.FeedLoopLastBackoff;
            Assert.True(backoff >= WorkQueueGroup.FeedLoopBackoff(6) && backoff <= WorkQueueGroup.FeedLoopMaxBackoff, $"after {group.FeedLoopFailures} failures in a row the loop waited {backoff.TotalMilliseconds} ms before its restart; expected it to grow from {WorkQueueGroup.FeedLoopFirstBackoff.TotalMilliseconds} ms, at most {WorkQueueGroup.FeedLoopMaxBackoff.TotalMilliseconds} ms");

            // The fault ends: the next pump succeeds, says how many lines it held back, and the loop goes on.
            Volatile.Write(ref failing, 0);
            await Eventually.TrueAsync(() => log.Any(l => l.Contains("no longer repeating", StringComparison.Ordinal)), "the held-back count is logged once the loop pumps again");
            await Eventually.TrueAsync(() => group.FeedLoopRunning, "the feed loop runs");
            var before = Volatile.Read(ref calls);
            await b.PublishAsync("feed-again", BrokerFixture.Utf8("m2"));
            await Eventually.TrueAsync(() => Volatile.Read(ref calls) > before, "the feed loop wakes for the next message");
            var got = new Collected();
            var r = new Recorder(got);
            await Eventually.TrueAsync(() => { member.Fetch(10, ref r); return got.Items.Count == 2; }, "both messages are delivered");
        }
        finally
        {
            b.FeedLoopHook = null;
        }
    }
}
