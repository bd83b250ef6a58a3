using System.Threading.Tasks.Sources;

namespace FastBroker.Threading;

/// <summary>
/// One source file compiled into the broker, the server and the client (linked from <c>src/Shared</c>, internal to
/// each): an auto-reset signal for exactly one async waiter, allocation-free: <see cref="Set"/> from any thread (cheap
/// when nobody waits: one compare-and-swap), <see cref="WaitAsync"/> completes at once if a signal is pending.
/// Continuations run asynchronously so the signalling thread (the dispatcher, a confirm sink, a socket reader) never
/// runs the waiter's code inline.
/// </summary>
internal sealed class AsyncSignal : IValueTaskSource
{
    private const int Idle = 0;
    private const int Signalled = 1;
    private const int Waiting = 2;

    private readonly ManualResetEventSlim _sync = new(false, spinCount: 0);
    private ManualResetValueTaskSourceCore<bool> _core = new() { RunContinuationsAsynchronously = true };
    private int _state;
    private int _syncWaiters;

    /// <summary>Wakes the waiter, or leaves a signal for the next wait.</summary>
    public void Set()
    {
        SetAsync();
        if (Volatile.Read(ref _syncWaiters) > 0)
        {
            _sync.Set();
        }
    }

    /// <summary>
    /// Blocks the calling thread until the next signal or the timeout (false). A direct wake-up of the sleeping
    /// thread: no thread-pool hop, for consumers that run their own thread.
    /// </summary>
    public bool Wait(TimeSpan timeout)
    {
        if (Interlocked.CompareExchange(ref _state, Idle, Signalled) == Signalled)
        {
            return true;
        }

        Interlocked.Increment(ref _syncWaiters);
        try
        {
            // A Set between the first check and the registration left the state signalled: take it.
            if (Interlocked.CompareExchange(ref _state, Idle, Signalled) == Signalled)
            {
                return true;
            }

            var woken = _sync.Wait(timeout);
            _sync.Reset();
            Interlocked.CompareExchange(ref _state, Idle, Signalled);
            return woken;
        }
        finally
        {
            Interlocked.Decrement(ref _syncWaiters);
        }
    }

    private void SetAsync()
    {
        while (true)
        {
            switch (Volatile.Read(ref _state))
            {
                case Signalled:
                    return;
                case Idle:
                    if (Interlocked.CompareExchange(ref _state, Signalled, Idle) == Idle)
                    {
                        return;
                    }

                    break;
                default:
                    if (Interlocked.CompareExchange(ref _state, Idle, Waiting) == Waiting)
                    {
                        _core.SetResult(true);
                        return;
                    }

                    break;
            }
        }
    }

    /// <summary>Waits for the next signal (one waiter at a time).</summary>
    public ValueTask WaitAsync()
    {
        if (Interlocked.CompareExchange(ref _state, Idle, Signalled) == Signalled)
        {
            return default;
        }

        _core.Reset();
        if (Interlocked.CompareExchange(ref _state, Waiting, Idle) == Idle)
        {
            return new ValueTask(this, _core.Version);
        }

        // A signal arrived between the two steps: consume it.
        Volatile.Write(ref _state, Idle);
        return default;
    }

    void IValueTaskSource.GetResult(short token) => _core.GetResult(token);

    ValueTaskSourceStatus IValueTaskSource.GetStatus(short token) => _core.GetStatus(token);

    void IValueTaskSource.OnCompleted(Action<object?> continuation, object? state, short token, ValueTaskSourceOnCompletedFlags flags) =>
        _core.OnCompleted(continuation, state, token, flags);
}
