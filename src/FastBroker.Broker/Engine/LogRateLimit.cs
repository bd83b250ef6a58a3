namespace FastBroker.Engine;

/// <summary>
/// Limits one kind of log line that a fault outside this node can repeat without end (a primary that keeps sending
/// bad data, a disk that keeps damaging files): the first is written at once, then at most one per
/// <see cref="Interval"/>, and one written after others were held back ends with how many
/// (<c>(and 12 more like it since the last such line, not logged)</c>). One held back is not written later on its own:
/// the count goes out with the next line written, or with the latest held back at <see cref="Flush"/>, which the
/// limit's owner calls as it stops (a broker's close, a standby's end), so that the count is never lost. Thread-safe.
/// </summary>
internal sealed class LogRateLimit
{
    /// <summary>The default <see cref="Interval"/>: 10 s, a few lines a minute however fast the fault repeats.</summary>
    public static readonly TimeSpan DefaultInterval = TimeSpan.FromSeconds(10);

    private readonly object _gate = new();
    private readonly TimeProvider _clock;
    private long _lastWritten;
    private bool _written;
    private long _heldBack;
    private string? _latestHeldBack;

    public LogRateLimit(TimeSpan interval, TimeProvider clock)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(interval, TimeSpan.Zero);
        Interval = interval;
        _clock = clock;
    }

    /// <summary>The shortest time between two lines written.</summary>
    public TimeSpan Interval { get; }

    /// <summary>Lines held back since the last one written.</summary>
    public long HeldBack
    {
        get
        {
            lock (_gate)
            {
                return _heldBack;
            }
        }
    }

    /// <summary>Writes <paramref name="line"/> to <paramref name="log"/> now, or holds it back and counts it.</summary>
    public void Write(Action<string>? log, string line)
    {
        if (log is null)
        {
            return;
        }

        long heldBack;
        lock (_gate)
        {
            var now = _clock.GetTimestamp();
            if (_written && _clock.GetElapsedTime(_lastWritten, now) < Interval)
            {
                _heldBack++;
                _latestHeldBack = line;
                return;
            }

            heldBack = _heldBack;
            _heldBack = 0;
            _latestHeldBack = null;
            _lastWritten = now;
            _written = true;
        }

        log(heldBack == 0 ? line : $"{line} (and {heldBack} more like it since the last such line, not logged)");
    }

    /// <summary>
    /// Writes to <paramref name="log"/> the lines held back since the last one written, if any: the latest of them
    /// ending with their count (<c>(12 more like it since the last such line, not logged; this is the latest of
    /// them)</c>), and forgets them, so a second call writes nothing. Called by the limit's owner as it stops: what is
    /// held back is otherwise written only with the next line, which does not come.
    /// </summary>
    public void Flush(Action<string>? log)
    {
        if (log is null)
        {
            return;
        }

        long heldBack;
        string? latest;
        lock (_gate)
        {
            heldBack = _heldBack;
            latest = _latestHeldBack;
            _heldBack = 0;
            _latestHeldBack = null;
        }

        if (heldBack > 0)
        {
            log($"{latest} ({heldBack} more like it since the last such line, not logged; this is the latest of them)");
        }
    }
}
