namespace FastBroker.Engine;

/// <summary>The group's feed loop: wakes when its topic gets messages and pumps the group, and survives its own failures.</summary>
internal sealed partial class WorkQueueGroup
{
    /// <summary>The wait before the feed loop's first restart after a failure; each failure in a row doubles it.</summary>
    internal static readonly TimeSpan FeedLoopFirstBackoff = TimeSpan.FromMilliseconds(10);

    /// <summary>The longest wait before a restart of a feed loop that keeps failing.</summary>
    internal static readonly TimeSpan FeedLoopMaxBackoff = TimeSpan.FromSeconds(1);

    private RepeatedLogLines? _feedLoopLog; // at the first failure: Broker.FeedLoopLogInterval then
    private long _feedLoopFailures;
    private long _feedLoopLastBackoffMs;
    private int _feedLoopRunning;

    /// <summary>How many times the feed loop threw and was restarted (tests).</summary>
    internal long FeedLoopFailures => Interlocked.Read(ref _feedLoopFailures);

    /// <summary>True while the feed loop waits for its topic or pumps; false while it backs off after a failure, and once it ended.</summary>
    internal bool FeedLoopRunning => Volatile.Read(ref _feedLoopRunning) != 0;

    /// <summary>The wait before the latest restart of the feed loop (tests).</summary>
    internal TimeSpan FeedLoopLastBackoff => TimeSpan.FromMilliseconds(Interlocked.Read(ref _feedLoopLastBackoffMs));

    /// <summary>The wait before the restart after <paramref name="failuresInARow"/> failures in a row: doubling from <see cref="FeedLoopFirstBackoff"/>, at most <see cref="FeedLoopMaxBackoff"/>.</summary>
    internal static TimeSpan FeedLoopBackoff(int failuresInARow) =>
        TimeSpan.FromMilliseconds(Math.Min(FeedLoopMaxBackoff.TotalMilliseconds, FeedLoopFirstBackoff.TotalMilliseconds * Math.Pow(2, Math.Min(failuresInARow - 1, 30))));

    /// <summary>
    /// Pumps the group each time its topic signals. Anything unexpected a pump throws (the timer's tick alone would
    /// then move the group, one pump per timer period) is logged, limited by text (one line per <see cref="Broker.FeedLoopLogInterval"/>),
    /// and the loop goes on after a wait that doubles with each failure in a row up to <see cref="FeedLoopMaxBackoff"/>,
    /// pumping once then whatever arrived meanwhile; the first pump that succeeds after failures writes how many lines
    /// were held back and resets the wait, and so does the group's close (<see cref="EndFeedLoopLog"/>).
    /// </summary>
    private async Task FeedLoopAsync()
    {
        var failuresInARow = 0;
        Volatile.Write(ref _feedLoopRunning, 1);
        try
        {
            while (!_stop.IsCancellationRequested)
            {
                try
                {
                    await _topicSignal.WaitAsync().ConfigureAwait(false);
                    _broker.FeedLoopHook?.Invoke(Name);
                    Pump();
                    if (failuresInARow > 0)
                    {
                        failuresInARow = 0;
                        _feedLoopLog?.EndAll(_broker.Log);
                    }
                }
                catch (Exception e)
                {
                    if (_stop.IsCancellationRequested)
                    {
                        return; // closing: the group's feed is disposed under it
                    }

                    failuresInARow++;
                    var backoff = FeedLoopBackoff(failuresInARow);
                    Interlocked.Increment(ref _feedLoopFailures);
                    Interlocked.Exchange(ref _feedLoopLastBackoffMs, (long)backoff.TotalMilliseconds);
                    Volatile.Write(ref _feedLoopRunning, 0);
                    var log = Volatile.Read(ref _feedLoopLog)
                        ?? Interlocked.CompareExchange(ref _feedLoopLog, new RepeatedLogLines(_broker.FeedLoopLogInterval, TimeProvider.System), null)
                        ?? _feedLoopLog!;
                    log.Write(_broker.Log, $"{Topic.Name}: group '{Name}': its feed loop failed ({e.GetType().Name}: {e.Message}); it restarts in {(long)backoff.TotalMilliseconds} ms (the broker's timer still pumps the group meanwhile)");
                    try
                    {
                        await Task.Delay(backoff, _stop.Token).ConfigureAwait(false);
                    }
                    catch (OperationCanceledException)
                    {
                        return;
                    }

                    Volatile.Write(ref _feedLoopRunning, 1);
                    _topicSignal.Set(); // pump again at once: the failed pump's work, and what arrived meanwhile
                }
            }
        }
        finally
        {
            Volatile.Write(ref _feedLoopRunning, 0);
            EndFeedLoopLog(); // closing: a failure that raced Dispose's flush is not lost either
        }
    }

    /// <summary>
    /// Writes the counts of feed-loop failure lines held back, if any: called by <see cref="Dispose"/> (so that the
    /// broker's close has written them) and as the loop ends (a failure logged while the group closed).
    /// </summary>
    private void EndFeedLoopLog() => Volatile.Read(ref _feedLoopLog)?.EndAll(_broker.Log);
}
