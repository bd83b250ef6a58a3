namespace FastBroker.Engine;

/// <summary>
/// Limits log lines that a fault can repeat without end, each by its text (where <see cref="LogRateLimit"/> limits one
/// kind of line whatever it says): the first line of a text is written at once, the same text again at most once per
/// <see cref="Interval"/>, ending with how many of it were held back since
/// (<c>(and 12 more like it since the last such line, not logged)</c>); another text is written at once. What comes
/// between two lines of a text does not matter: a failure that alternates with successes, or with another failure, round
/// by round, is limited as one that repeats without a break. A text not seen for a whole interval no longer repeats:
/// <see cref="EndQuiet"/> writes the count held back of it, if any, and forgets it; <see cref="EndAll"/> does so for
/// every text at once, where the caller knows the fault is over. Thread-safe.
/// </summary>
/// <remarks>
/// Texts are told apart with their standalone numbers left out (<see cref="Key"/>): a fault that repeats often says
/// what it measured each time (<c>nothing from the primary for 5012 ms</c>, then 5007; an offset that moved on), and
/// keyed by the whole text each of its lines would be new, written at once, and the limit would do nothing for it. The line written
/// is always the latest text, so its numbers are at most one interval old; the cost is that two faults differing only
/// in such a number (the same check failing at two offsets) within an interval are counted as one. A number is
/// standalone only when it stands between spaces, the text's ends or <c>( ) , ; : = [ ] %</c> (a sentence's full stop
/// after it too): a digit inside a name (<c>'orders.2024'</c>, <c>'t1'</c>, quoted or joined to letters, <c>_</c>,
/// <c>-</c>, <c>.</c>) or a path (<c>/</c>, <c>\</c>) is kept, so failures of two topics, groups, nodes or files stay
/// distinct.
/// </remarks>
internal sealed class RepeatedLogLines
{
    /// <summary>
    /// The most texts remembered: 64, far more than a loop has distinct failures; past it the one seen longest ago is
    /// forgotten (its count written first), so texts that vary without end (a name in them) cannot grow this.
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

    /// <summary>Lines of <paramref name="line"/>'s text (its <see cref="Key"/>) held back since the last one written.</summary>
    public long HeldBack(string line)
    {
        lock (_gate)
        {
            return _texts.TryGetValue(Key(line), out var text) ? text.HeldBack : 0;
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
        var key = Key(line);
        lock (_gate)
        {
            var now = _clock.GetTimestamp();
            if (_texts.TryGetValue(key, out var text))
            {
                text.LastSeen = now;
                text.Latest = line;
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
                    forgotten = oldest.Value.HeldBack > 0 ? NoLongerRepeating(oldest.Value) : null;
                }

                _texts[key] = new Text { Latest = line, LastWritten = now, LastSeen = now };
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
            foreach (var (key, text) in _texts)
            {
                if (_clock.GetElapsedTime(text.LastSeen, now) >= Interval)
                {
                    _texts.Remove(key); // allowed while enumerating a Dictionary since .NET Core 3.0
                    if (text.HeldBack > 0)
                    {
                        (counts ??= []).Add(NoLongerRepeating(text));
                    }
                }
            }
        }

        foreach (var count in counts ?? [])
        {
            log?.Invoke(count);
        }
    }

    /// <summary>
    /// Forgets every text, seen lately or not, writing to <paramref name="log"/> the count of each held back since its
    /// last line (the latest text, ending <c>; no longer repeating)</c>): the next line of any text is written at once.
    /// Called where the fault is known to be over (a link that stays up after links that each ended at once).
    /// </summary>
    public void EndAll(Action<string>? log)
    {
        List<string>? counts = null;
        lock (_gate)
        {
            foreach (var text in _texts.Values)
            {
                if (text.HeldBack > 0)
                {
                    (counts ??= []).Add(NoLongerRepeating(text));
                }
            }

            _texts.Clear();
        }

        foreach (var count in counts ?? [])
        {
            log?.Invoke(count);
        }
    }

    /// <summary>
    /// What tells <paramref name="line"/>'s text from others: the line with each standalone number (digits, with a
    /// decimal part or not) replaced by <c>#</c>; a number is standalone when the character before it is a space,
    /// <c>( , ; : = [</c> or none, and the one after it a space, <c>) , ; : ] %</c>, none, or a full stop that ends the text
    /// or comes before a space.
    /// </summary>
    internal static string Key(string line)
    {
        System.Text.StringBuilder? key = null;
        var copied = 0;
        for (var i = 0; i < line.Length; i++)
        {
            if (!char.IsAsciiDigit(line[i]) || (i > 0 && !char.IsWhiteSpace(line[i - 1]) && line[i - 1] is not ('(' or ',' or ';' or ':' or '=' or '[')))
            {
                continue;
            }

            var end = i;
            while (end < line.Length && char.IsAsciiDigit(line[end]))
            {
                end++;
            }

            if (end + 1 < line.Length && line[end] == '.' && char.IsAsciiDigit(line[end + 1]))
            {
                for (end++; end < line.Length && char.IsAsciiDigit(line[end]); end++)
                {
                }
            }

            if (end == line.Length || char.IsWhiteSpace(line[end]) || line[end] is ')' or ',' or ';' or ':' or ']' or '%'
                || (line[end] == '.' && (end + 1 == line.Length || char.IsWhiteSpace(line[end + 1]))))
            {
                key ??= new System.Text.StringBuilder(line.Length);
                key.Append(line, copied, i - copied).Append('#');
                copied = end;
            }

            i = end - 1; // a run that is no number (a name's digits) is skipped whole
        }

        return key is null ? line : key.Append(line, copied, line.Length - copied).ToString();
    }

    private static string NoLongerRepeating(Text text) =>
        $"{text.Latest} (and {text.HeldBack} more like it since the last such line, not logged; no longer repeating)";

    private sealed class Text
    {
        public required string Latest;

        public long LastWritten;
        public long LastSeen;
        public long HeldBack;
    }
}
