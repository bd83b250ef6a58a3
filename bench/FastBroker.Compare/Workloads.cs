using System.Buffers.Binary;
using System.Diagnostics;
using FastBroker.Bench.Infrastructure;

namespace FastBroker.Compare;

/// <summary>The shapes every system's workloads share: a pipelined confirm window, a paced latency run, deadlines.</summary>
internal static class Workloads
{
    /// <summary>100-byte payloads, as <c>bench e2e</c>.</summary>
    public const int PayloadBytes = 100;

    /// <summary>Unconfirmed publishes allowed in flight on the one publishing connection (as <c>bench e2e</c>).</summary>
    public const int Window = 4096;

    /// <summary>The longest any run may take before it fails: nothing waits without a deadline.</summary>
    public static readonly TimeSpan RunDeadline = TimeSpan.FromMinutes(5);

    /// <summary>
    /// Sends <paramref name="n"/> messages through <paramref name="send"/> (message index → its confirmation) with up to
    /// <see cref="Window"/> unconfirmed, hands each confirmation to <paramref name="confirmed"/>, and returns once all are
    /// confirmed. A failed confirmation throws.
    /// </summary>
    public static async Task PipelinedAsync<T>(int n, Func<int, ValueTask<T>> send, Action<T>? confirmed, CancellationToken cancellationToken)
    {
        var window = new Queue<ValueTask<T>>(Window);
        for (var i = 0; i < n; i++)
        {
            if (window.Count == Window)
            {
                var r = await window.Dequeue().ConfigureAwait(false);
                confirmed?.Invoke(r);
                cancellationToken.ThrowIfCancellationRequested();
            }

            window.Enqueue(send(i));
        }

        while (window.Count > 0)
        {
            var r = await window.Dequeue().ConfigureAwait(false);
            confirmed?.Invoke(r);
        }
    }

    /// <summary>
    /// The e2e confirm-latency method: a pacer thread sends message i at start + i / <paramref name="rate"/> (waiting with
    /// <see cref="Pacer"/>), and each confirmation records now − its <em>scheduled</em> time where its continuation runs
    /// (coordinated-omission correction: a stalled sender charges the stall to every message it delayed). The payload
    /// carries the scheduled timestamp. Returns the achieved msgs/s; throws if any confirmation fails or the run
    /// passes <see cref="RunDeadline"/>.
    /// </summary>
    public static async Task<double> PacedLatencyAsync(int count, int rate, LogLinearHistogram histogram, Func<byte[], Task> send, CancellationToken cancellationToken)
    {
        var intervalTicks = Stopwatch.Frequency / (double)rate;
        var nsPerTick = 1e9 / Stopwatch.Frequency;
        var gate = new object();
        var recorded = 0;
        var done = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);

        async Task TimeAsync(Task confirm, long scheduled)
        {
            try
            {
                await confirm.ConfigureAwait(false);
            }
            catch (Exception e)
            {
                done.TrySetException(e);
                return;
            }

            var now = Stopwatch.GetTimestamp();
            lock (gate)
            {
                histogram.Record((long)((now - scheduled) * nsPerTick));
                if (++recorded == count)
                {
                    done.TrySetResult();
                }
            }
        }

        var start = Stopwatch.GetTimestamp() + (Stopwatch.Frequency / 100);
        var sw = Stopwatch.StartNew();
        using var stop = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        var sender = new Thread(() =>
        {
            try
            {
                for (var i = 0; i < count && !stop.IsCancellationRequested; i++)
                {
                    var scheduled = start + (long)(i * intervalTicks);
                    Pacer.WaitUntil(scheduled);

                    // A payload per message: a client may still hold the previous one when the next is sent.
                    var payload = new byte[PayloadBytes];
                    BinaryPrimitives.WriteInt64LittleEndian(payload, scheduled);
                    _ = TimeAsync(send(payload), scheduled);
                }
            }
            catch (Exception e)
            {
                done.TrySetException(e);
            }
        })
        { Name = "compare-pacer", IsBackground = true };
        sender.Start();
        try
        {
            await done.Task.WaitAsync(RunDeadline, cancellationToken).ConfigureAwait(false);
        }
        catch (TimeoutException)
        {
            throw new TimeoutException($"confirm latency: {Volatile.Read(ref recorded):N0} of {count:N0} confirmations within {RunDeadline.TotalMinutes:0} min");
        }
        finally
        {
            await stop.CancelAsync().ConfigureAwait(false);
            sender.Join();
        }

        return count / sw.Elapsed.TotalSeconds;
    }

    /// <summary>Waits for <paramref name="tasks"/> (subscribers done) within <see cref="RunDeadline"/>; on timeout, says how far each got.</summary>
    public static async Task WhenAllWithinDeadlineAsync(IReadOnlyList<Task> tasks, Func<string> progress, CancellationToken cancellationToken)
    {
        try
        {
            await Task.WhenAll(tasks).WaitAsync(RunDeadline, cancellationToken).ConfigureAwait(false);
        }
        catch (TimeoutException)
        {
            throw new TimeoutException($"subscribers not done within {RunDeadline.TotalMinutes:0} min: {progress()}");
        }
    }

    /// <summary>Throws unless <paramref name="actual"/> equals <paramref name="expected"/>: the run's own count check.</summary>
    public static void Check(string what, long expected, long actual)
    {
        if (expected != actual)
        {
            throw new InvalidOperationException($"{what}: expected {expected:N0}, got {actual:N0}");
        }
    }
}
