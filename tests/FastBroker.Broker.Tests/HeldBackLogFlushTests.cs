using System.Collections.Concurrent;
using System.Globalization;
using System.Text.RegularExpressions;
using FastBroker.Testing;

namespace FastBroker.BrokerTests;

/// <summary>
/// The failure lines the broker limits by text (<c>RepeatedLogLines</c>) and holds back are counted in the log, not
/// lost, when the broker closes: the timer tasks' failures and a work-queue group's feed-loop failures, with an interval
/// that never ends within the test, so that only the close can write the counts.
/// </summary>
public partial class HeldBackLogFlushTests
{
    [Fact]
    public async Task Timer_failures_held_back_are_counted_in_the_log_when_the_broker_closes()
    {
        var lines = new ConcurrentQueue<string>();
        await using var f = await BrokerFixture.StartAsync(o => o with { Log = lines.Enqueue });
        var b = f.Broker;
        b.TimerFailureLogInterval = TimeSpan.FromHours(1);
        using var member = b.JoinGroup("timer-held", "g", GroupOptions.Default with { Prefetch = 1 });
        var failed = 0;
        b.TimerTaskHook = name =>
        {
            if (name == "g")
            {
                Interlocked.Increment(ref failed);
                throw new InvalidOperationException("the group's tick failed");
            }
        };

        await Eventually.TrueAsync(() => Volatile.Read(ref failed) >= 5, "the group's tick fails five times");
        await b.DisposeAsync(); // waits for a tick in progress: no failure after it
        var ofGroup = lines.Where(l => l.Contains("timer: work-queue group 'g' of topic 'timer-held' failed", StringComparison.Ordinal)).ToList();
        var total = Volatile.Read(ref failed);
        Assert.True(
            ofGroup.Count == 2 && ofGroup[1].EndsWith($"(and {total - 1} more like it since the last such line, not logged; no longer repeating)", StringComparison.Ordinal),
            $"{total} failures: the first line, then the count of {total - 1} held back at the close expected: [{string.Join(" | ", ofGroup)}]");
    }

    [Fact]
    public async Task Feed_loop_failures_held_back_are_counted_in_the_log_when_the_broker_closes()
    {
        var lines = new ConcurrentQueue<string>();
        await using var f = await BrokerFixture.StartAsync(o => o with { Log = lines.Enqueue });
        var b = f.Broker;
        b.FeedLoopLogInterval = TimeSpan.FromDays(1);
        b.FeedLoopHook = name =>
        {
            if (name == "g")
            {
                throw new IOException("test: the feed keeps failing");
            }
        };

        using var member = b.JoinGroup("feed-held", "g", GroupOptions.Default with { Prefetch = 10 });
        var group = member.RuntimeGroup;
        await b.PublishAsync("feed-held", BrokerFixture.Utf8("m1"));
        await Eventually.TrueAsync(() => group.FeedLoopFailures >= 4, "the feed loop fails four times");
        await b.DisposeAsync();

        // Every failure is in the log: its line, or a count held back (the loop may log one more as the group closes,
        // written as the loop ends).
        long Logged()
        {
            var ofLoop = lines.Where(l => l.Contains("group 'g': its feed loop failed", StringComparison.Ordinal)).ToList();
            // A count line repeats the latest text: it stands for the failures held back only.
            return ofLoop.Sum(l => HeldBack().Match(l) is { Success: true } m ? long.Parse(m.Groups[1].Value, CultureInfo.InvariantCulture) : 1);
        }

        await Eventually.TrueAsync(() => Logged() == group.FeedLoopFailures, "every feed-loop failure is logged or counted", TimeSpan.FromSeconds(30));
        Assert.Contains(lines, l => l.Contains("group 'g': its feed loop failed", StringComparison.Ordinal) && l.EndsWith("not logged; no longer repeating)", StringComparison.Ordinal));
    }

    [GeneratedRegex(@"\(and (\d+) more like it since the last such line, not logged; no longer repeating\)$")]
    private static partial Regex HeldBack();
}
