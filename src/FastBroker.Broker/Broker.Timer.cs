using FastBroker.Engine;

namespace FastBroker;

/// <summary>The broker's timer: visibility and standby ack timeouts, the <c>producers.epochs</c> refresh, the groups' state-file and durable subscriptions' position-file checks, and the failures of its tasks.</summary>
public sealed partial class Broker
{
    private long _timerFailures;
    private RepeatedLogLines? _timerFailureLog; // created by the first failure
    private long _nextPositionCheckMs; // Environment.TickCount64 of the next check of the position files; under _gate
    private int _timerTickRunning; // 1 while the broker's own duties run (TickDuties): a callback that finds it set skips them
    private long _timerCallbacks;
    private long _timerTicksSkipped;

    /// <summary>The timer's period now (0 = not started; tests).</summary>
    internal TimeSpan TimerPeriod
    {
        get
        {
            lock (_timerLock)
            {
                return TimeSpan.FromMilliseconds(_timerPeriodMs);
            }
        }
    }

    /// <summary>
    /// How often a primary with no work-queue group checks standby ack timeouts: a fiftieth of the timeout, between
    /// <see cref="BrokerOptions.TimerResolution"/> and 50 ms (with the default 5 s timeout, 20 times a second instead
    /// of 200; a held confirmation fails at most that much after its timeout).
    /// </summary>
    internal static TimeSpan StandbyTimerPeriod(TimeSpan resolution, TimeSpan ackTimeout)
        => TimeSpan.FromTicks(Math.Clamp(ackTimeout.Ticks / 50, resolution.Ticks, Math.Max(resolution.Ticks, TimeSpan.FromMilliseconds(50).Ticks)));

    /// <summary>
    /// Starts the timer (the <c>producers.epochs</c> refresh, visibility timeouts, standby ack timeouts, the position-file
    /// checks of durable subscriptions: once a second) once something needs it, or makes it tick faster when something
    /// needs a finer period: a broker with no group, no durable subscription and no standby ticks only for the refresh
    /// (<see cref="ProducerEpochFile.RefreshCheckPeriod"/>: every 15 minutes by default), and a timer waking a pool
    /// thread 200 times a second would take CPU from the pipeline on a small machine for nothing.
    /// </summary>
    internal void StartTimer(TimeSpan? period = null)
    {
        var ms = (int)Math.Max(1, (period ?? _options.TimerResolution).TotalMilliseconds);
        lock (_timerLock)
        {
            if (_timerPeriodMs != 0 && _timerPeriodMs <= ms)
            {
                return;
            }

            _timerPeriodMs = ms;
            try
            {
                _timer.Change(ms, ms);
            }
            catch (ObjectDisposedException)
            {
                // Closing.
            }
        }
    }

    /// <summary>
    /// The timer's callback. The replication gate's timeouts are checked on every callback (cheap, under the gate's own
    /// lock, and a standby-mode confirmation must not wait past its timeout because another task is slow). The other
    /// tasks are independent of each other and each never overlaps itself: the broker's own duties (the
    /// <c>producers.epochs</c> refresh, the position-file checks) are one task, each work-queue group's tick another. A
    /// callback that finds a task's previous run still going (a group's tick waiting on that group's lock, a state
    /// file's rewrite on a slow disk) skips that task and goes on with the others, and is counted
    /// (<see cref="TimerTicksSkipped"/>): so a held task delays only itself, and ties up one pool thread, not one more per
    /// period behind it, which would starve every async path of the process (client sessions, the fsynced
    /// confirmations, group feeds).
    /// </summary>
    private void OnTimer()
    {
        Interlocked.Increment(ref _timerCallbacks);
        if (!IsOpen)
        {
            return;
        }

        try
        {
            Replication?.CheckTimeouts();
        }
        catch (Exception e)
        {
            TimerTaskFailed("the replication gate's timeouts", e);
        }

        var skipped = false;
        if (Interlocked.CompareExchange(ref _timerTickRunning, 1, 0) == 0)
        {
            try
            {
                TickDuties();
            }
            finally
            {
                Volatile.Write(ref _timerTickRunning, 0);
            }
        }
        else
        {
            skipped = true;
        }

        if (!TickGroups())
        {
            skipped = true;
        }

        if (skipped)
        {
            Interlocked.Increment(ref _timerTicksSkipped);
        }
    }

    /// <summary>The broker's own timer duties, one run at a time: the <c>producers.epochs</c> refresh and the position-file checks.</summary>
    private void TickDuties()
    {
        // A failure that stopped repeating writes how many of its lines were held back (nothing when none failed).
        Volatile.Read(ref _timerFailureLog)?.EndQuiet(_options.Log);
        try
        {
            _producerEpochs.Refresh(_producers); // a clock compare, but once an interval (an hour by default)
        }
        catch (Exception e)
        {
            TimerTaskFailed("the producers.epochs refresh", e);
        }

        CheckPositionFilesOnTimer();
    }

    /// <summary>
    /// Each open group's tick, skipping a group whose previous tick still runs (<see cref="WorkQueueGroup.TryBeginTimerTick"/>):
    /// false when one was skipped.
    /// </summary>
    private bool TickGroups()
    {
        WorkQueueGroup[] groups;
        lock (_gate)
        {
            if (_groups.Count == 0)
            {
                return true;
            }

            groups = [.. _groups.Values];
        }

        var all = true;
        foreach (var g in groups)
        {
            if (!g.TryBeginTimerTick())
            {
                all = false;
                continue;
            }

            try
            {
                TimerTaskHook?.Invoke(g.Name);
                g.OnTimer();
            }
            catch (Exception e)
            {
                TimerTaskFailed($"work-queue group '{g.Name}' of topic '{g.Topic.Name}'", e);
            }
            finally
            {
                g.EndTimerTick();
            }
        }

        return all;
    }

    /// <summary>
    /// Once per <see cref="StateFileCheckInterval"/> (a second): checks that each open durable subscription's position
    /// file is still at its path (one syscall each, none per commit: <see cref="Subscription.CheckPositionFile"/>), so
    /// commits made after a removal reach a file within about that.
    /// </summary>
    private void CheckPositionFilesOnTimer()
    {
        var interval = (long)StateFileCheckInterval.TotalMilliseconds;
        var now = Environment.TickCount64;
        if (interval < 0 || now < Volatile.Read(ref _nextPositionCheckMs))
        {
            return;
        }

        Subscription[] durable;
        lock (_gate)
        {
            if (now < _nextPositionCheckMs)
            {
                return;
            }

            _nextPositionCheckMs = now + interval;
            if (_openDurableNames.Count == 0)
            {
                return;
            }

            durable = [.. _subscriptions.Where(s => s.Options.DurableName is not null)];
        }

        foreach (var s in durable)
        {
            try
            {
                s.CheckPositionFile(closing: false);
            }
            catch (Exception e)
            {
                TimerTaskFailed($"durable subscription '{s.Options.DurableName}'", e);
            }
        }
    }

    /// <summary>
    /// A durable subscription opened: the timer must tick at least once per <see cref="StateFileCheckInterval"/> (and
    /// once a second) for <see cref="CheckPositionFilesOnTimer"/> (a broker with no group and no standby ticks otherwise only for the
    /// <c>producers.epochs</c> refresh).
    /// </summary>
    private void StartPositionFileChecks()
    {
        var interval = StateFileCheckInterval;
        StartTimer(interval > TimeSpan.Zero && interval < TimeSpan.FromSeconds(1) ? interval : TimeSpan.FromSeconds(1));
    }

    /// <summary>
    /// One task of the timer tick threw (a journal read of a damaged record, say). The timer runs on a pool thread,
    /// where an exception would end the process, every client with it: the failure is counted and logged instead,
    /// limited by its text (<see cref="RepeatedLogLines"/>: a task's first failure at once, the same failure again at
    /// most once per <see cref="TimerFailureLogInterval"/> with how many were held back, another task's failure at
    /// once), and the other tasks, and the next ticks, go on. A count held back is written by the tick once its failure
    /// has not been seen for that interval, and at the latest when the broker closes (<see cref="DisposeAsync"/>).
    /// </summary>
    private void TimerTaskFailed(string what, Exception e)
    {
        Interlocked.Increment(ref _timerFailures);
        var log = Volatile.Read(ref _timerFailureLog)
            ?? Interlocked.CompareExchange(ref _timerFailureLog, new RepeatedLogLines(TimerFailureLogInterval, TimeProvider.System), null)
            ?? _timerFailureLog!;
        log.Write(_options.Log, $"timer: {what} failed: {e.GetType().Name}: {e.Message}");
    }

    /// <summary>
    /// How often a timer task that keeps failing the same way logs it, with how many such lines were held back
    /// meanwhile: 10 s; tests set it before the first failure.
    /// </summary>
    internal TimeSpan TimerFailureLogInterval { get; set; } = TimeSpan.FromSeconds(10);

    /// <summary>How many times the timer fired, skipped ticks included (tests).</summary>
    internal long TimerCallbacks => Interlocked.Read(ref _timerCallbacks);

    /// <summary>How many times the timer fired while a task's previous run (the broker's duties, a group's tick) was still going, and skipped that task (see <see cref="OnTimer"/>).</summary>
    internal long TimerTicksSkipped => Interlocked.Read(ref _timerTicksSkipped);

    /// <summary>How many timer tasks threw (see <see cref="TimerTaskFailed"/>).</summary>
    internal long TimerFailures => Interlocked.Read(ref _timerFailures);

    /// <summary>
    /// How often the timer checks that each open work-queue group's state file, and each open durable subscription's
    /// position file, is still at its path (one syscall per file, a <c>readlink</c> on Linux: <see cref="WorkQueueGroup.OnTimer"/>,
    /// <see cref="CheckPositionFilesOnTimer"/>): once a second; tests set it (infinite: only the close checks).
    /// </summary>
    internal TimeSpan StateFileCheckInterval { get; set; } = TimeSpan.FromSeconds(1);

    /// <summary>Tests only: called with a group's name on each timer tick, before the group's own tick.</summary>
    internal Action<string>? TimerTaskHook { get; set; }

    /// <summary>Tests only: called with a group's name each time its feed loop wakes, before it pumps the group.</summary>
    internal Action<string>? FeedLoopHook { get; set; }

    /// <summary>
    /// How often a work-queue group's feed loop that keeps failing the same way logs it, with how many such lines were
    /// held back meanwhile: 10 s; tests set it.
    /// </summary>
    internal TimeSpan FeedLoopLogInterval { get; set; } = TimeSpan.FromSeconds(10);
}
