using FastBroker.Engine;
using FastBroker.Testing;

namespace FastBroker.BrokerTests;

/// <summary>
/// <see cref="RepeatedLogLines"/> limits each text on its own, whatever comes between its repeats, and never loses the
/// count of those it held back: a text forgotten (not seen for an interval, or the one seen longest ago when it holds
/// its most texts) has its count written. Texts that differ only in standalone numbers are one text, written as the
/// latest; numbers inside names and paths keep texts apart.
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
            limit.Write(log.Add, $"text t{i}"); // a number joined to a name: distinct texts
        }

        Assert.Equal(RepeatedLogLines.MaxTexts, log.Count);
        limit.Write(log.Add, "one more");
        Assert.Equal(["first (and 1 more like it since the last such line, not logged; no longer repeating)", "one more"], log[^2..]);
        limit.Write(log.Add, "first"); // forgotten: written at once
        Assert.Equal("first", log[^1]);
    }

    [Fact]
    public void Texts_that_differ_only_in_standalone_numbers_are_one_text_written_as_the_latest()
    {
        var clock = new ManualClock();
        var limit = new RepeatedLogLines(s_interval, clock);
        var log = new List<string>();
        limit.Write(log.Add, "standby: link down: nothing from the primary for 5012 ms (heartbeat timeout 500 ms)");
        limit.Write(log.Add, "standby: link down: nothing from the primary for 5007 ms (heartbeat timeout 500 ms)");
        limit.Write(log.Add, "unexpected IOException in role Primary: offset 17, 2.5% done.");
        limit.Write(log.Add, "unexpected IOException in role Primary: offset 18, 3.25% done.");
        Assert.True(log.Count == 2, $"texts that differ only in numbers, one line each expected: [{string.Join(" | ", log)}]");
        Assert.Equal(1, limit.HeldBack("standby: link down: nothing from the primary for 1 ms (heartbeat timeout 2 ms)"));

        clock.Advance(s_interval);
        limit.Write(log.Add, "standby: link down: nothing from the primary for 5020 ms (heartbeat timeout 500 ms)");
        Assert.Equal("standby: link down: nothing from the primary for 5020 ms (heartbeat timeout 500 ms) (and 1 more like it since the last such line, not logged)", log[^1]);
        limit.EndQuiet(log.Add); // the offset's text, last seen an interval ago: its latest text with the count
        Assert.Equal("unexpected IOException in role Primary: offset 18, 3.25% done. (and 1 more like it since the last such line, not logged; no longer repeating)", log[^1]);
    }

    [Theory]
    [InlineData("topic 'orders.2024' is damaged at offset 5", "topic 'orders.2025' is damaged at offset 5")]
    [InlineData("topic '2024' is damaged", "topic '2025' is damaged")]
    [InlineData("topic t1 is damaged", "topic t2 is damaged")]
    [InlineData("group w-1 failed", "group w-2 failed")]
    [InlineData("cannot remove /data/topics/7/x", "cannot remove /data/topics/8/x")]
    [InlineData("segment 00000001.seg is damaged", "segment 00000002.seg is damaged")]
    public void Texts_whose_numbers_are_inside_names_or_paths_stay_distinct(string first, string second)
    {
        var limit = new RepeatedLogLines(s_interval, new ManualClock());
        var log = new List<string>();
        limit.Write(log.Add, first);
        limit.Write(log.Add, second);
        Assert.Equal([first, second], log);
    }

    [Fact]
    public void EndAll_writes_each_count_held_back_and_forgets_every_text()
    {
        var limit = new RepeatedLogLines(s_interval, new ManualClock());
        var log = new List<string>();
        limit.Write(log.Add, "attached");
        limit.Write(log.Add, "disconnected: 1");
        limit.Write(log.Add, "attached");
        limit.Write(log.Add, "disconnected: 2");
        limit.Write(log.Add, "attached");
        limit.Write(log.Add, "other");
        limit.EndAll(log.Add);
        Assert.Equal(["attached", "disconnected: 1", "other"], log[..3]);
        Assert.Equal(
            [
                "attached (and 2 more like it since the last such line, not logged; no longer repeating)",
                "disconnected: 2 (and 1 more like it since the last such line, not logged; no longer repeating)",
            ],
            log[3..].Order(StringComparer.Ordinal));
        limit.Write(log.Add, "disconnected: 3");
        Assert.Equal("disconnected: 3", log[^1]);
    }
}
