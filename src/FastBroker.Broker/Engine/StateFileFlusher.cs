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

    /// <summary>Passes completed (diagnostics).</summary>
    public long Passes => Volatile.Read(ref _passes);

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
                file.Sync(); // its failure goes to its waiters; the next request tries again
            }

            _working.Clear();
            Interlocked.Increment(ref _passes);
        }
    }
}
