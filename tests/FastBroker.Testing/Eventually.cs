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
