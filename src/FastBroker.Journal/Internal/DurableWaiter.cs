using System.Threading.Tasks.Sources;

namespace FastBroker.Journal.Internal;

/// <summary>
/// A pooled wait for "durable past offset N": the flusher completes every satisfied waiter in one pass after a
/// sync, so a thousand producers waiting on one group commit cost no threads and, in steady state, no allocation.
/// </summary>
internal sealed class DurableWaiter : IValueTaskSource
{
    private readonly JournalLog _owner;
    private ManualResetValueTaskSourceCore<bool> _core;
    private CancellationTokenRegistration _registration;

    internal DurableWaiter(JournalLog owner)
    {
        _owner = owner;
        _core.RunContinuationsAsynchronously = true; // never run a caller's continuation on the flusher thread
    }

    internal long Target { get; set; }

    internal short Version => _core.Version;

    internal void Register(CancellationToken token)
    {
        if (token.CanBeCanceled)
        {
            _registration = token.UnsafeRegister(static (state, ct) => ((DurableWaiter)state!)._owner.CancelWaiter((DurableWaiter)state!, ct), this);
        }
    }

    /// <summary>Drops the cancellation registration of a waiter that was never listed (waits if its callback is running).</summary>
    internal void ClearRegistration()
    {
        _registration.Dispose();
        _registration = default;
    }

    internal void Complete() => _core.SetResult(true);

    internal void Fail(Exception error) => _core.SetException(error);

    public void GetResult(short token)
    {
        try
        {
            _core.GetResult(token);
        }
        finally
        {
            _registration.Dispose();
            _registration = default;
            _core.Reset();
            _owner.ReturnWaiter(this);
        }
    }

    public ValueTaskSourceStatus GetStatus(short token) => _core.GetStatus(token);

    public void OnCompleted(Action<object?> continuation, object? state, short token, ValueTaskSourceOnCompletedFlags flags) =>
        _core.OnCompleted(continuation, state, token, flags);
}
