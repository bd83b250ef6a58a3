using System.Threading.Tasks.Sources;

namespace FastBroker.Threading;

/// <summary>
/// One source file compiled into the broker, the server and the client (linked from <c>src/Shared</c>, internal to
/// each): an auto-reset signal for one async waiter at a time, allocation-free in steady state. <see cref="Set"/> from
/// any thread is one read when a signal is already pending; <see cref="WaitAsync"/> completes at once if one is.
/// Continuations run asynchronously so the signalling thread (the dispatcher, a confirm sink, a socket reader) never
/// runs the waiter's code inline.
/// <para>
/// A wait may be abandoned (e.g. <c>signal.WaitAsync().AsTask().WaitAsync(timeout)</c> timing out) and a new one
/// started before the old one completed or was read: the old waiter object is then left to its holder (woken
/// spuriously) and the new wait gets a fresh one, so a late completion can never touch a reused source.
/// </para>
/// </summary>
internal sealed class AsyncSignal
{
    private const int Idle = 0;
    private const int Signalled = 1;
    private const int Waiting = 2;

    private readonly object _gate = new();
    private readonly ManualResetEventSlim _sync = new(false, spinCount: 0);
    private Waiter _waiter = new();
    private int _state;
    private int _syncWaiters;

    /// <summary>Wakes the waiter, or leaves a signal for the next wait.</summary>
    public void Set()
    {
        if (Volatile.Read(ref _state) != Signalled)
        {
            Waiter? wake = null;
            lock (_gate)
            {
                if (_state == Waiting)
                {
                    wake = _waiter;
                    _state = Idle;
                }
                else
                {
                    _state = Signalled;
                }
            }

            wake?.Complete();
        }

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
        if (TryConsume())
        {
            return true;
        }

        Interlocked.Increment(ref _syncWaiters);
        try
        {
            // A Set between the first check and the registration left the state signalled: take it.
            if (TryConsume())
            {
                return true;
            }

            var woken = _sync.Wait(timeout);
            _sync.Reset();
            TryConsume();
            return woken;
        }
        finally
        {
            Interlocked.Decrement(ref _syncWaiters);
        }
    }

    /// <summary>Waits for the next signal (one waiter at a time; an abandoned wait is tolerated, see the remarks).</summary>
    public ValueTask WaitAsync()
    {
        Waiter? abandoned = null;
        ValueTask wait;
        lock (_gate)
        {
            if (_state == Signalled)
            {
                _state = Idle;
                return default;
            }

            if (_state == Waiting)
            {
                // The previous wait is still armed: its holder gave up on it. Wake it for whoever still holds it.
                abandoned = _waiter;
                _state = Idle;
            }

            var w = _waiter;
            if (!w.IsFree)
            {
                // Handed out and not read back yet (abandoned, or its continuation has not run): never reuse it.
                w = _waiter = new Waiter();
            }

            wait = w.Arm();
            _state = Waiting;
        }

        abandoned?.Complete();
        return wait;
    }

    private bool TryConsume()
    {
        if (Volatile.Read(ref _state) != Signalled)
        {
            return false;
        }

        lock (_gate)
        {
            if (_state != Signalled)
            {
                return false;
            }

            _state = Idle;
            return true;
        }
    }

    /// <summary>One wait's completion source; free again once its result has been read.</summary>
    private sealed class Waiter : IValueTaskSource
    {
        private ManualResetValueTaskSourceCore<bool> _core = new() { RunContinuationsAsynchronously = true };
        private int _outstanding;

        public bool IsFree => Volatile.Read(ref _outstanding) == 0;

        public ValueTask Arm()
        {
            _core.Reset();
            Volatile.Write(ref _outstanding, 1);
            return new ValueTask(this, _core.Version);
        }

        public void Complete() => _core.SetResult(true);

        void IValueTaskSource.GetResult(short token)
        {
            try
            {
                _core.GetResult(token);
            }
            finally
            {
                Volatile.Write(ref _outstanding, 0);
            }
        }

        ValueTaskSourceStatus IValueTaskSource.GetStatus(short token) => _core.GetStatus(token);

        void IValueTaskSource.OnCompleted(Action<object?> continuation, object? state, short token, ValueTaskSourceOnCompletedFlags flags) =>
            _core.OnCompleted(continuation, state, token, flags);
    }
}
