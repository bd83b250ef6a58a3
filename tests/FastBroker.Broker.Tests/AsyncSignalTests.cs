using FastBroker.Testing;
using FastBroker.Threading;

namespace FastBroker.BrokerTests;

/// <summary>The shared async signal behind Subscription/WorkQueueMember.WaitAsync, the server's writer and the client's writer.</summary>
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
        var unobserved = 0;
        void OnUnobserved(object? sender, UnobservedTaskExceptionEventArgs e) => Interlocked.Increment(ref unobserved);
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
            var woken = 0;
            for (var i = 0; i < 5_000; i++)
            {
                try
                {
                    await signal.WaitAsync().AsTask().WaitAsync(TimeSpan.FromTicks(i % 50));
                    woken++;
                }
                catch (TimeoutException)
                {
                }
            }

            stop.Cancel();
            Eventually.Joined(setter);

            // Still a working signal afterwards.
            var last = signal.WaitAsync();
            signal.Set();
            await last.AsTask().WaitAsync(Eventually.DefaultTimeout);
            Assert.True(woken > 0);
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
