namespace FastBroker.Ring.Internal;

/// <summary>What the workers of one pool share: the claim counter and the drain target once halting.</summary>
internal sealed class WorkerPoolState
{
    private long _drainTarget = long.MaxValue;
    private volatile bool _halting;

    /// <summary>The highest sequence claimed by any worker of the pool.</summary>
    public Sequence WorkSequence { get; } = new();

    public bool IsHalting => _halting;

    /// <summary>Every sequence up to this (inclusive) is processed before the workers stop.</summary>
    public long DrainTarget => Volatile.Read(ref _drainTarget);

    /// <summary>Sets the drain target, then the halting flag (release order: a worker that sees the flag sees the target).</summary>
    public void BeginHalt(long drainTarget)
    {
        Volatile.Write(ref _drainTarget, drainTarget);
        _halting = true;
    }
}
