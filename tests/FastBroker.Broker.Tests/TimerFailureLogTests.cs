using System.Collections.Concurrent;
using FastBroker.Testing;

namespace FastBroker.BrokerTests;

/// <summary>
/// A timer task that throws is logged limited by its text (first at once, then once per interval with the count held
/// back), so two tasks failing differently are each logged at once and one that keeps failing does not hide the other.
/// </summary>
public class TimerFailureLogTests
{
    [Fact]
    public async Task Two_groups_failing_on_the_timer_are_each_logged_at_once_and_a_repeating_one_only_once_per_interval()
    {
        var lines = new ConcurrentQueue<string>();
        await using var f = await BrokerFixture.StartAsync(o => o with { Log = lines.Enqueue });
        var b = f.Broker;
        b.TimerFailureLogInterval = TimeSpan.FromHours(1); // no second line of a text within the test
        using var a = b.JoinGroup("timer-fail", "ga", GroupOptions.Default with { Prefetch = 1 });
        using var c = b.JoinGroup("timer-fail", "gb", GroupOptions.Default with { Prefetch = 1 });
        int failedA = 0, failedB = 0;
        b.TimerTaskHook = name =>
        {
            if (name == "ga")
            {
                Interlocked.Increment(ref failedA);
                throw new InvalidOperationException("group a's tick failed");
            }

            if (name == "gb")
            {
                Interlocked.Increment(ref failedB);
                throw new InvalidOperationException("group b's tick failed");
            }
        };

        try
        {
            // Each logs synchronously before the next tick reaches it: after a second failure the first is in the log.
            await Eventually.TrueAsync(() => Volatile.Read(ref failedA) >= 5 && Volatile.Read(ref failedB) >= 5, "both groups' ticks fail five times");
        }
        finally
        {
            b.TimerTaskHook = null;
        }

        var ofA = lines.Count(l => l.Contains("work-queue group 'ga' of topic 'timer-fail' failed", StringComparison.Ordinal) && l.Contains("group a's tick failed", StringComparison.Ordinal));
        var ofB = lines.Count(l => l.Contains("work-queue group 'gb' of topic 'timer-fail' failed", StringComparison.Ordinal) && l.Contains("group b's tick failed", StringComparison.Ordinal));
        Assert.True(ofA == 1 && ofB == 1, $"expected one line for each group, got {ofA} for ga and {ofB} for gb: {string.Join(" | ", lines.Where(l => l.Contains("timer:", StringComparison.Ordinal)))}");
        Assert.True(b.TimerFailures >= 10, $"{b.TimerFailures} timer failures counted");
    }
}
