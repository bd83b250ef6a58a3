using System.Threading.Tasks.Sources;

namespace FastBroker.Server.Internal;

/// <summary>
/// The writer's wake-up: an auto-reset signal for exactly one async waiter, allocation-free. <see cref="Set"/> is one
/// compare-and-swap when the writer is busy; continuations run asynchronously, so a broker thread (the dispatcher
/// calling a confirm sink) never runs the writer's code inline.
/// </summary>
internal sealed class SessionSignal : IValueTaskSource
{
    private const int Idle = 0;
    private const int Signalled = 1;
    private const int Waiting = 2;

    private ManualResetValueTaskSourceCore<bool> _core = new() { RunContinuationsAsynchronously = true };
    private int _state;

    /// <summary>Wakes the waiter, or leaves a signal for the next wait.</summary>
    public void Set()
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

    /// <summary>Completes at the next <see cref="Set"/> (at once if one is pending). One waiter at a time.</summary>
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

        // A Set slipped in between the two steps: consume it.
        Volatile.Write(ref _state, Idle);
        return default;
    }

    void IValueTaskSource.GetResult(short token) => _core.GetResult(token);

    ValueTaskSourceStatus IValueTaskSource.GetStatus(short token) => _core.GetStatus(token);

    void IValueTaskSource.OnCompleted(Action<object?> continuation, object? state, short token, ValueTaskSourceOnCompletedFlags flags) =>
        _core.OnCompleted(continuation, state, token, flags);
}
