using FastBroker.Engine;
using FastBroker.Testing;

namespace FastBroker.BrokerTests;

/// <summary>
/// <see cref="RepeatedLogLines"/> limits each text on its own, whatever comes between its repeats, and never loses the
/// count of those it held back: a text forgotten (not seen for an interval, or the one seen longest ago when it holds
/// its most texts) has its count written.
/// </summary>
public class RepeatedLogLinesTests
{
    private static readonly TimeSpan s_interval = TimeSpan.FromSeconds(10);

    [Fact]
    public void Each_text_is_written_at_once_then_once_per_interval_with_the_count_held_back()
    {
        var clock = new ManualClock();
        var limit = new RepeatedLogLines(s_interval, clock);
        var log = new List<string>();
        for (var i = 0; i < 10; i++)
        {
            limit.Write(log.Add, "a");
            limit.Write(log.Add, "b");
            limit.EndQuiet(log.Add); // a round without either: neither is quiet for an interval yet
        }

        Assert.Equal(["a", "b"], log);
        clock.Advance(s_interval);
        limit.Write(log.Add, "a");
        Assert.Equal("a (and 9 more like it since the last such line, not logged)", log[^1]);
        limit.EndQuiet(log.Add); // "b", last seen an interval ago
        Assert.Equal("b (and 9 more like it since the last such line, not logged; no longer repeating)", log[^1]);
        limit.Write(log.Add, "b");
        Assert.Equal("b", log[^1]);
    }

    [Fact]
    public void The_text_seen_longest_ago_is_forgotten_with_its_count_when_the_limit_holds_its_most_texts()
    {
        var clock = new ManualClock();
        var limit = new RepeatedLogLines(s_interval, clock);
        var log = new List<string>();
        limit.Write(log.Add, "first");
        limit.Write(log.Add, "first");
        for (var i = 1; i < RepeatedLogLines.MaxTexts; i++)
        {
            clock.Advance(TimeSpan.FromMilliseconds(1));
            limit.Write(log.Add, $"text {i}");
        }

        Assert.Equal(RepeatedLogLines.MaxTexts, log.Count);
        limit.Write(log.Add, "one more");
        Assert.Equal(["first (and 1 more like it since the last such line, not logged; no longer repeating)", "one more"], log[^2..]);
        limit.Write(log.Add, "first"); // forgotten: written at once
        Assert.Equal("first", log[^1]);
    }
}
