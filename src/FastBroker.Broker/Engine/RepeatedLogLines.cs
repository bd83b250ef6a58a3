namespace FastBroker.Engine;

/// <summary>
/// Limits log lines that a fault can repeat without end, each by its text (where <see cref="LogRateLimit"/> limits one
/// kind of line whatever it says): the first line of a text is written at once, the same text again at most once per
/// <see cref="Interval"/>, ending with how many of it were held back since
/// (<c>(and 12 more like it since the last such line, not logged)</c>); another text is written at once. What comes
/// between two lines of a text does not matter: a failure that alternates with successes, or with another failure, round
/// by round, is limited as one that repeats without a break. A text not seen for a whole interval no longer repeats:
/// <see cref="EndQuiet"/> writes the count held back of it, if any, and forgets it. Thread-safe.
/// </summary>
internal sealed class RepeatedLogLines
{
    /// <summary>
    /// The most texts remembered: 64, far more than a loop has distinct failures; past it the one seen longest ago is
    /// forgotten (its count written first), so a text that varies without end (a number in it) cannot grow this.
    /// </summary>
    internal const int MaxTexts = 64;

    private readonly object _gate = new();
    private readonly TimeProvider _clock;
    private readonly Dictionary<string, Text> _texts = new(StringComparer.Ordinal);

    public RepeatedLogLines(TimeSpan interval, TimeProvider clock)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(interval, TimeSpan.Zero);
        Interval = interval;
        _clock = clock;
    }

    /// <summary>The shortest time between two lines of the same text.</summary>
    public TimeSpan Interval { get; }

    /// <summary>Lines of <paramref name="line"/>'s text held back since the last one written.</summary>
    public long HeldBack(string line)
    {
        lock (_gate)
        {
            return _texts.TryGetValue(line, out var text) ? text.HeldBack : 0;
        }
    }

    /// <summary>Writes <paramref name="line"/> to <paramref name="log"/> now, or holds it back and counts it.</summary>
    public void Write(Action<string>? log, string line)
    {
        if (log is null)
        {
            return;
        }

        string written;
        string? forgotten = null;
        lock (_gate)
        {
            var now = _clock.GetTimestamp();
            if (_texts.TryGetValue(line, out var text))
            {
                text.LastSeen = now;
                if (_clock.GetElapsedTime(text.LastWritten, now) < Interval)
                {
                    text.HeldBack++;
                    return;
                }

                written = text.HeldBack == 0 ? line : $"{line} (and {text.HeldBack} more like it since the last such line, not logged)";
                text.HeldBack = 0;
                text.LastWritten = now;
            }
            else
            {
                if (_texts.Count >= MaxTexts)
                {
                    var oldest = _texts.MinBy(t => t.Value.LastSeen);
                    _texts.Remove(oldest.Key);
                    forgotten = oldest.Value.HeldBack > 0 ? NoLongerRepeating(oldest.Key, oldest.Value.HeldBack) : null;
                }

                _texts[line] = new Text { LastWritten = now, LastSeen = now };
                written = line;
            }
        }

        if (forgotten is not null)
        {
            log(forgotten);
        }

        log(written);
    }

    /// <summary>
    /// Forgets the texts not seen for a whole <see cref="Interval"/> (they no longer repeat), writing to
    /// <paramref name="log"/> the count of each held back since its last line: the next line of such a text is written at
    /// once. Called where the fault's loop goes through a round without it.
    /// </summary>
    public void EndQuiet(Action<string>? log)
    {
        List<string>? counts = null;
        lock (_gate)
        {
            if (_texts.Count == 0)
            {
                return;
            }

            var now = _clock.GetTimestamp();
            foreach (var (line, text) in _texts)
            {
                if (_clock.GetElapsedTime(text.LastSeen, now) >= Interval)
                {
                    _texts.Remove(line); // allowed while enumerating a Dictionary since .NET Core 3.0
                    if (text.HeldBack > 0)
                    {
                        (counts ??= []).Add(NoLongerRepeating(line, text.HeldBack));
                    }
                }
            }
        }

        foreach (var count in counts ?? [])
        {
            log?.Invoke(count);
        }
    }

    private static string NoLongerRepeating(string line, long heldBack) =>
        $"{line} (and {heldBack} more like it since the last such line, not logged; no longer repeating)";

    private sealed class Text
    {
        public long LastWritten;
        public long LastSeen;
        public long HeldBack;
    }
}
