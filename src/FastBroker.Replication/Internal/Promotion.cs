namespace FastBroker.Replication.Internal;

/// <summary>
/// A manual promotion request (the task's state is <c>force</c>): taken up by the standby loop or withdrawn by its
/// caller's cancellation, whichever comes first; the other then fails.
/// </summary>
internal sealed class Promotion(bool force) : TaskCompletionSource<long>(force, TaskCreationOptions.RunContinuationsAsynchronously)
{
    private const int Requested = 0;
    private const int TakenUp = 1;
    private const int Withdrawn = 2;

    private int _state;

    /// <summary>The standby loop acts on it: false if it was withdrawn. Idempotent.</summary>
    public bool TryTakeUp() => Interlocked.CompareExchange(ref _state, TakenUp, Requested) != Withdrawn;

    /// <summary>The standby loop has taken it up (GET /primary: promoting).</summary>
    public bool IsTakenUp => Volatile.Read(ref _state) == TakenUp;

    /// <summary>The caller cancelled: false if the standby loop has taken it up.</summary>
    public bool TryWithdraw() => Interlocked.CompareExchange(ref _state, Withdrawn, Requested) == Requested;
}
