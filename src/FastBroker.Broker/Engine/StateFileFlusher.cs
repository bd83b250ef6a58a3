namespace FastBroker.Engine;

/// <summary>
/// Msyncs the broker's state files (work-queue group state, durable subscription positions) of <c>Fsynced</c> topics,
/// so that an ack or a commit survives an OS crash or a power loss as the topic's journal does, without a sync call on
/// the thread that acks: <see cref="MappedStateFile.RequestSync"/> queues the file, and a pool thread msyncs every
/// queued file, one <c>msync</c> per file for all the updates made to it since its last one (a group commit: updates
/// made during a pass wait for the next one, which starts at once).
/// </summary>
/// <remarks>One per broker. Nothing is allocated per request: the queue is two lists swapped between passes, and the
/// pass is queued to the pool as this object (<see cref="IThreadPoolWorkItem"/>).</remarks>
internal sealed class StateFileFlusher : IThreadPoolWorkItem
{
    private readonly object _lock = new();
    private List<MappedStateFile> _pending = [];
    private List<MappedStateFile> _working = [];
    private bool _scheduled; // under _lock: a pass is queued or running
    private long _passes;
    private long _failures;
    private string? _lastFailure; // flusher thread only: logged once per cause, not once per pass of a failing disk

    /// <summary>Passes completed (diagnostics).</summary>
    public long Passes => Volatile.Read(ref _passes);

    /// <summary>Syncs that failed (diagnostics): each failed its file's waiters, the flusher went on with the others.</summary>
    public long Failures => Volatile.Read(ref _failures);

    /// <summary>Where a failed sync is reported (the broker's log); null: nowhere.</summary>
    public Action<string>? Log { get; set; }

    /// <summary>Tests only: runs before each file's msync, inside it; what it throws is that file's sync failing.</summary>
    internal Action<MappedStateFile>? SyncFault { get; set; }

    /// <summary>
    /// Tests only: runs inside <see cref="MappedStateFile.Dispose"/> before its msync of what was still waiting to be
    /// synced; what it throws is that msync failing.
    /// </summary>
    internal Action<MappedStateFile>? CloseSyncFault { get; set; }

    /// <summary>
    /// Tests only: called with the path of each state file this flusher syncs, when it is created, once its bytes are
    /// written under its temporary name and before it is renamed into place (<see cref="MappedStateFile.Open"/>).
    /// </summary>
    internal Action<string>? Creating { get; set; }

    /// <summary>
    /// Tests only: called with the path of each state file this flusher syncs, when <see cref="MappedStateFile.Open"/>
    /// found it there or made it, before it opens it.
    /// </summary>
    internal Action<string>? Opening { get; set; }

    /// <summary>Any thread: <paramref name="file"/> has updates to sync (it is not in the queue already).</summary>
    public void Enqueue(MappedStateFile file)
    {
        lock (_lock)
        {
            _pending.Add(file);
            if (_scheduled)
            {
                return;
            }

            _scheduled = true;
        }

        ThreadPool.UnsafeQueueUserWorkItem(this, preferLocal: false);
    }

    void IThreadPoolWorkItem.Execute()
    {
        while (true)
        {
            lock (_lock)
            {
                if (_pending.Count == 0)
                {
                    _scheduled = false;
                    return;
                }

                (_pending, _working) = (_working, _pending);
            }

            foreach (var file in _working)
            {
                // One file's failure goes to its waiters and is counted; the next request tries it again. Nothing may
                // escape: an exception out of a pool work item ends the process, and the flusher would stay scheduled.
                BrokerException? failure;
                try
                {
                    failure = file.Sync();
                }
                catch (Exception e)
                {
                    file.FailSync(e);
                    failure = new BrokerException(BrokerErrorCode.StorageError, $"msync of '{file.Path}' failed: {e.Message}");
                }

                if (failure is not null)
                {
                    Interlocked.Increment(ref _failures);
                    if (failure.Message != _lastFailure)
                    {
                        _lastFailure = failure.Message;
                        Log?.Invoke($"state files: {failure.Message}");
                    }
                }
            }

            _working.Clear();
            Interlocked.Increment(ref _passes);
        }
    }
}
