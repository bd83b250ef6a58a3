using System.Diagnostics;

namespace FastBroker.Testing;

/// <summary>
/// Waits on conditions with deadlines instead of fixed sleeps: tests must pass on a loaded 2-core machine,
/// so they never assume how fast anything runs, only that it finishes within a generous bound.
/// </summary>
public static class Eventually
{
    /// <summary>The default deadline: generous, because CI machines are shared and slow to wake up.</summary>
    public static readonly TimeSpan DefaultTimeout = TimeSpan.FromSeconds(60);

    /// <summary>Spins, then yields, then sleeps briefly until <paramref name="condition"/> holds or the deadline passes.</summary>
    /// <exception cref="TimeoutException">The condition did not hold before the deadline.</exception>
    public static void True(Func<bool> condition, string because, TimeSpan? timeout = null)
    {
        if (!TryWait(condition, timeout ?? DefaultTimeout))
        {
            throw new TimeoutException($"Condition not met within {(timeout ?? DefaultTimeout).TotalSeconds:0.#} s: {because}");
        }
    }

    /// <summary>
    /// The async form of <see cref="True"/> for async tests: polls without holding a thread. Blocking a thread-pool
    /// thread in a wait (2 cores, tests in parallel) starves the I/O and timer continuations of the code under test.
    /// </summary>
    /// <exception cref="TimeoutException">The condition did not hold before the deadline.</exception>
    public static async Task TrueAsync(Func<bool> condition, string because, TimeSpan? timeout = null)
    {
        var limit = timeout ?? DefaultTimeout;
        var sw = Stopwatch.StartNew();
        while (!condition())
        {
            if (sw.Elapsed > limit)
            {
                throw new TimeoutException($"Condition not met within {limit.TotalSeconds:0.#} s: {because}");
            }

            await Task.Delay(2).ConfigureAwait(false); // polling interval of a condition with a deadline, not a synchronisation sleep
        }
    }

    /// <summary>Like <see cref="True"/> but returns false on timeout instead of throwing.</summary>
    public static bool TryWait(Func<bool> condition, TimeSpan timeout)
    {
        var sw = Stopwatch.StartNew();
        var spinner = new SpinWait();
        while (!condition())
        {
            if (sw.Elapsed > timeout)
            {
                return false;
            }

            if (spinner.Count < 50)
            {
                spinner.SpinOnce(sleep1Threshold: -1);
            }
            else
            {
                Thread.Sleep(1); // back-off inside a condition wait that has a deadline
            }
        }

        return true;
    }

    /// <summary>
    /// Waits until <paramref name="done"/> holds for as long as <paramref name="progress"/> keeps rising: fails when it
    /// stands still for <paramref name="stall"/> (default <see cref="DefaultTimeout"/>: a hang, a lost wake-up), or
    /// when <paramref name="limit"/> (default 10 min) passes in all. For long work made of many hand-offs between
    /// threads, whose length on a loaded 2-core machine is the load's, not the code's: a fixed deadline on it measures
    /// the machine, while a stall is what the code can be blamed for.
    /// </summary>
    /// <param name="done">The end condition.</param>
    /// <param name="progress">A count that rises while the work moves (events handled, bytes written).</param>
    /// <param name="because">What is waited for, for the failure message.</param>
    /// <param name="state">The state to put in the failure message (counters, sequences), read when it fails.</param>
    /// <param name="stall">How long <paramref name="progress"/> may stand still.</param>
    /// <param name="limit">The bound on the whole wait.</param>
    /// <exception cref="TimeoutException">The work stalled, or did not end within <paramref name="limit"/>.</exception>
    public static void WhileProgressing(Func<bool> done, Func<long> progress, string because, Func<string>? state = null, TimeSpan? stall = null, TimeSpan? limit = null)
    {
        var stallLimit = stall ?? DefaultTimeout;
        var totalLimit = limit ?? TimeSpan.FromMinutes(10);
        var total = Stopwatch.StartNew();
        var still = Stopwatch.StartNew();
        var last = progress();
        var first = last;
        var spinner = new SpinWait();
        while (!done())
        {
            var now = progress();
            if (now != last)
            {
                last = now;
                still.Restart();
            }

            var stalled = still.Elapsed > stallLimit;
            if (stalled || total.Elapsed > totalLimit)
            {
                var why = stalled
                    ? $"no progress for {stallLimit.TotalSeconds:0.#} s (stuck at {last})"
                    : $"still moving but not done within {totalLimit.TotalSeconds:0.#} s (at {last})";
                throw new TimeoutException(
                    $"{because}: {why}; progress went from {first} to {last} in {total.Elapsed.TotalSeconds:0.#} s{(state is null ? "" : "; " + state())}");
            }

            if (spinner.Count < 50)
            {
                spinner.SpinOnce(sleep1Threshold: -1);
            }
            else
            {
                Thread.Sleep(1); // back-off inside a condition wait that has a deadline
            }
        }
    }

    /// <summary>Joins a thread with a deadline, failing the test if it does not end.</summary>
    public static void Joined(Thread thread, TimeSpan? timeout = null)
    {
        if (!thread.Join(timeout ?? DefaultTimeout))
        {
            throw new TimeoutException($"Thread '{thread.Name}' did not finish within {(timeout ?? DefaultTimeout).TotalSeconds:0.#} s");
        }
    }

    /// <summary>Awaits a task with a deadline, failing the test if it does not complete.</summary>
    public static async Task Completes(Task task, TimeSpan? timeout = null)
    {
        await task.WaitAsync(timeout ?? DefaultTimeout).ConfigureAwait(false);
    }

    /// <summary>Awaits a task with a deadline, failing the test if it does not complete.</summary>
    public static async Task<T> Completes<T>(Task<T> task, TimeSpan? timeout = null)
    {
        return await task.WaitAsync(timeout ?? DefaultTimeout).ConfigureAwait(false);
    }
}
