using FastBroker.Testing;
using FastBroker.Threading;

namespace FastBroker.Crash.Tests;

/// <summary>The shared async signal (src/Shared, compiled into this project too) behind Subscription/WorkQueueMember.WaitAsync, the server's writer and the client's writer.</summary>
public class AsyncSignalTests
{
    [Fact]
    public async Task A_pending_signal_completes_the_next_wait_at_once_and_is_consumed()
    {
        var signal = new AsyncSignal();
        signal.Set();
        signal.Set();
        Assert.True(signal.WaitAsync().IsCompleted);
        var next = signal.WaitAsync();
        Assert.False(next.IsCompleted);
        signal.Set();
        await next.AsTask().WaitAsync(Eventually.DefaultTimeout);
    }

    [Fact]
    public async Task An_abandoned_wait_is_woken_and_a_new_wait_gets_its_own_source()
    {
        var signal = new AsyncSignal();
        var abandoned = signal.WaitAsync().AsTask();
        var current = signal.WaitAsync();

        // The abandoned one is released (spuriously) rather than left to be completed through a reused source.
        await abandoned.WaitAsync(Eventually.DefaultTimeout);
        Assert.False(current.IsCompleted);
        signal.Set();
        await current.AsTask().WaitAsync(Eventually.DefaultTimeout);
    }

    [Fact]
    public async Task Waits_abandoned_by_timeouts_while_another_thread_signals_never_fault()
    {
        // What crashed a test host before: WaitAsync().AsTask().WaitAsync(timeout) timing out, the next WaitAsync
        // resetting the same source, then a Set completing it under the old task's token.
        var signal = new AsyncSignal();
        // The event is process-wide (other tests run in parallel): count only faults that involve the signal.
        var unobserved = 0;
        void OnUnobserved(object? sender, UnobservedTaskExceptionEventArgs e)
        {
            if (e.Exception.ToString().Contains(nameof(AsyncSignal), StringComparison.Ordinal))
            {
                Interlocked.Increment(ref unobserved);
            }
        }

        TaskScheduler.UnobservedTaskException += OnUnobserved;
        using var stop = new CancellationTokenSource();
        var setter = new Thread(() =>
        {
            var spin = new SpinWait();
            while (!stop.IsCancellationRequested)
            {
                signal.Set();
                spin.SpinOnce(sleep1Threshold: -1);
            }
        })
        { IsBackground = true, Name = "signal-setter" };
        setter.Start();
        try
        {
            // Each round arms a wait, abandons it by starting another, and awaits both: with a reused source the
            // abandoned task's completion would run under a stale token on a pool thread. No timers involved.
            var woken = 0;
            async Task RoundsAsync()
            {
                for (var i = 0; i < 20_000; i++)
                {
                    var abandoned = signal.WaitAsync().AsTask();
                    await signal.WaitAsync();
                    await abandoned;
                    woken++;
                }
            }

            await RoundsAsync().WaitAsync(Eventually.DefaultTimeout);

            stop.Cancel();
            Eventually.Joined(setter);

            // Still a working signal afterwards.
            var last = signal.WaitAsync();
            signal.Set();
            await last.AsTask().WaitAsync(Eventually.DefaultTimeout);
            Assert.Equal(20_000, woken);
        }
        finally
        {
            stop.Cancel();
            GC.Collect();
            GC.WaitForPendingFinalizers();
            TaskScheduler.UnobservedTaskException -= OnUnobserved;
        }

        Assert.Equal(0, Volatile.Read(ref unobserved));
    }
}
