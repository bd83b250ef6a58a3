namespace FastBroker.Engine;

/// <summary>
/// Msyncs the broker's state files (work-queue group state, durable subscription positions) of <c>Fsynced</c> topics,
/// so that an ack or a commit survives an OS crash or a power loss as the topic's journal does, without a sync call on
/// the thread that acks: <see cref="MappedStateFile.RequestSync"/> queues the file, and a pool thread msyncs it, one
/// <c>msync</c> for all the updates made to it since its last one (a group commit: updates made during an msync wait
/// for the next one of that file, which starts once it ends).
/// </summary>
/// <remarks>
/// <para>Each file is synced on its own, never two of its msyncs at once, up to <see cref="MaxConcurrentSyncs"/> files
/// at a time, in the order they were queued: a file whose msync hangs (a stalled device, a lost mount) holds one pool
/// thread and its own waiters, not the other files' syncs nor the <c>CommitAsync</c>s waiting for them; only as many
/// hung files as the bound hold every other one behind them.</para>
/// <para>Nothing is allocated per request: the queue is a <see cref="Queue{T}"/> that keeps its array, and each file
/// is queued to the pool as its own work item (<see cref="MappedStateFile.SyncWork"/>), made once with the file.</para>
/// </remarks>
internal sealed class StateFileFlusher
{
    /// <summary>
    /// The default bound on files msynced at once: 4. Each msync blocks its pool thread, so a few stuck files (one lost
    /// mount) leave room for the others, and more would take pool threads from the async paths for little: msyncs of
    /// files on one device share its flushes.
    /// </summary>
    public const int DefaultMaxConcurrentSyncs = 4;

    private readonly object _lock = new();
    private readonly Queue<MappedStateFile> _queue = new(); // under _lock: files with updates to sync and no msync of the flusher's running
    private int _running; // under _lock: files being synced (≤ MaxConcurrentSyncs; the queue is empty while fewer run)
    private long _syncsEnded;
    private long _failures;
    private string? _lastFailure; // under _lock: logged once per cause, not once per msync of a failing disk

    /// <param name="maxConcurrentSyncs">How many files are msynced at once at most (<see cref="DefaultMaxConcurrentSyncs"/>).</param>
    public StateFileFlusher(int maxConcurrentSyncs = DefaultMaxConcurrentSyncs)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(maxConcurrentSyncs, 1);
        MaxConcurrentSyncs = maxConcurrentSyncs;
    }

    /// <summary>How many files are msynced at once at most.</summary>
    public int MaxConcurrentSyncs { get; }

    /// <summary>Syncs of a file ended, failed ones included (diagnostics).</summary>
    public long SyncsEnded => Volatile.Read(ref _syncsEnded);

    /// <summary>Syncs that failed (diagnostics): each failed its file's waiters, the flusher went on with the others.</summary>
    public long Failures => Volatile.Read(ref _failures);

    /// <summary>Files being synced now (diagnostics, tests).</summary>
    public int Running
    {
        get
        {
            lock (_lock)
            {
                return _running;
            }
        }
    }

    /// <summary>Files waiting for a sync to start: for a free place under <see cref="MaxConcurrentSyncs"/> (diagnostics, tests).</summary>
    public int Queued
    {
        get
        {
            lock (_lock)
            {
                return _queue.Count;
            }
        }
    }

    /// <summary>Where a failed sync is reported (the broker's log); null: nowhere.</summary>
    public Action<string>? Log { get; set; }

    /// <summary>Tests only: runs before each file's msync, inside it; what it throws is that file's sync failing, and while it blocks that msync is held.</summary>
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

    /// <summary>
    /// Any thread: <paramref name="file"/> has updates to sync (it is not in the queue already). A file whose sync is
    /// running is queued again when it ends (<see cref="MappedStateFile.SyncAgain"/>), not synced alongside it.
    /// </summary>
    public void Enqueue(MappedStateFile file)
    {
        MappedStateFile? start;
        lock (_lock)
        {
            if (file.SyncRunning)
            {
                file.SyncAgain = true;
                return;
            }

            _queue.Enqueue(file);
            start = TakeNext();
        }

        if (start is not null)
        {
            ThreadPool.UnsafeQueueUserWorkItem(start.SyncWork, preferLocal: false);
        }
    }

    /// <summary>Under <see cref="_lock"/>: the next queued file to sync, marked running, when fewer than the bound run.</summary>
    private MappedStateFile? TakeNext()
    {
        if (_running >= MaxConcurrentSyncs || !_queue.TryDequeue(out var file))
        {
            return null;
        }

        file.SyncRunning = true;
        _running++;
        return file;
    }

    /// <summary>
    /// A pool thread (<see cref="MappedStateFile.SyncWork"/>): syncs <paramref name="file"/>, then the next queued file in
    /// its place while there is one. Never throws: an exception out of a pool work item ends the process.
    /// </summary>
    internal void Run(MappedStateFile file)
    {
        for (MappedStateFile? next = file; next is not null;)
        {
            SyncOne(next);
            lock (_lock)
            {
                next.SyncRunning = false;
                _running--;
                if (next.SyncAgain)
                {
                    next.SyncAgain = false;
                    _queue.Enqueue(next); // behind the files queued meanwhile: a busy file does not keep its place
                }

                next = TakeNext();
            }
        }
    }

    private void SyncOne(MappedStateFile file)
    {
        // One file's failure goes to its waiters and is counted; the next request tries it again.
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

        Interlocked.Increment(ref _syncsEnded);
        if (failure is null)
        {
            return;
        }

        Interlocked.Increment(ref _failures);
        bool log;
        lock (_lock)
        {
            log = failure.Message != _lastFailure;
            _lastFailure = failure.Message;
        }

        if (log)
        {
            try
            {
                Log?.Invoke($"state files: {failure.Message}");
            }
            catch (Exception)
            {
                // The log's own failure must not escape the pool work item either.
            }
        }
    }
}
