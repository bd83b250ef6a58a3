namespace FastBroker.Testing;

/// <summary>What a log rate limit (the broker's <c>LogRateLimit</c>) let through, checked the same way by every test of one.</summary>
public static class RateLimitedLines
{
    /// <summary>The interval the broker's log rate limit writes a line of one kind at most once in.</summary>
    public static readonly TimeSpan Interval = TimeSpan.FromSeconds(10);

    /// <summary>
    /// Runs <paramref name="occurrence"/> <paramref name="occurrences"/> times (index 0, 1, …), <paramref name="clock"/>
    /// moved on by one <see cref="Interval"/> before the last: the lines <see cref="Violation"/> then expects.
    /// </summary>
    public static void Repeat(ManualClock clock, int occurrences, Action<int> occurrence)
    {
        for (var i = 0; i < occurrences; i++)
        {
            if (i == occurrences - 1)
            {
                clock.Advance(Interval);
            }

            occurrence(i);
        }
    }

    /// <summary>The async form of <see cref="Repeat"/>: each occurrence ends before the next starts.</summary>
    public static async Task RepeatAsync(ManualClock clock, int occurrences, Func<int, Task> occurrence)
    {
        for (var i = 0; i < occurrences; i++)
        {
            if (i == occurrences - 1)
            {
                clock.Advance(Interval);
            }

            await occurrence(i);
        }
    }

    /// <summary>
    /// Null when <paramref name="lines"/> are what the limit writes for <paramref name="occurrences"/> lines of one kind
    /// with the test's clock moved on by one interval before the last: the first at once, without a count, and the last,
    /// ending with how many in between were not logged; otherwise why not, with the lines.
    /// </summary>
    /// <param name="lines">The log lines of that kind, in order.</param>
    /// <param name="occurrences">How many times the line was asked for.</param>
    /// <param name="what">What the lines are about, for the message ("blank copies").</param>
    public static string? Violation(IReadOnlyList<string> lines, int occurrences, string what)
    {
        var all = string.Join(" | ", lines);
        if (lines.Count != 2)
        {
            return $"expected two log lines for {occurrences} {what} (the first, and one 10 s later): [{all}]";
        }

        if (lines[0].Contains("not logged", StringComparison.Ordinal))
        {
            return $"the first log line for {what} counts lines not logged: [{all}]";
        }

        var count = $"(and {occurrences - 2} more like it since the last such line, not logged)";
        return lines[1].EndsWith(count, StringComparison.Ordinal) ? null : $"the second log line for {what} does not end with '{count}': [{all}]";
    }
}
