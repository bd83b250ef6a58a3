namespace FastBroker.Engine;

// The msyncs of a mapped state file (the flusher's, Flush's): made outside the file's lock, counted in flight under it,
// so that a slow or hung one holds nothing else of the file and the mapping is unmapped only once none runs in it.
internal sealed unsafe partial class MappedStateFile
{
    private SyncWorkItem? _syncWork;

    /// <summary>Under the flusher's lock: a sync of the flusher's is running for this file (at most one at a time).</summary>
    internal bool SyncRunning { get; set; }

    /// <summary>Under the flusher's lock: the file was requested again while its sync ran; it is queued again when that ends.</summary>
    internal bool SyncAgain { get; set; }

    /// <summary>What the flusher queues to the pool to sync this file: made once, so a request allocates nothing.</summary>
    internal IThreadPoolWorkItem SyncWork => _syncWork ??= new SyncWorkItem(this);

    /// <summary>
    /// Flusher: msyncs every update requested so far and completes their waiters (nothing once closing). Never throws:
    /// a failure of any kind fails the waiters it would have completed (<see cref="BrokerErrorCode.StorageError"/>) and
    /// is returned; the next request tries again. The msync runs outside the file's lock (<see cref="BeginMsync"/>), so a
    /// hung one holds nothing else of the file.
    /// </summary>
    internal BrokerException? Sync()
    {
        Volatile.Write(ref _queued, 0); // a request from now on queues the file again
        long covered;
        lock (_syncLock)
        {
            if (_closing)
            {
                return null; // the close msyncs what is waiting and completes the waiters
            }

            covered = Volatile.Read(ref _requested); // read before the msync: every store it counts precedes it
            if (covered <= Volatile.Read(ref _synced))
            {
                return null;
            }

            BeginMsync();
        }

        BrokerException? failure = null;
        try
        {
            _flusher?.SyncFault?.Invoke(this);
            _view.Flush();
        }
        catch (Exception e)
        {
            // Not only IOException: anything escaping here would escape the flusher's pool work item and end the process.
            failure = new BrokerException(BrokerErrorCode.StorageError, $"msync of '{Path}' failed: {e.Message}");
        }
        finally
        {
            EndMsync(covered, failure, keepFailure: true);
        }

        CompleteWaiters(failure);
        return failure;
    }

    /// <summary>Under <see cref="_syncLock"/>, not closing: an msync is about to run outside the lock; the mapping stays mapped until its <see cref="EndMsync"/>.</summary>
    private void BeginMsync() => _inFlight++;

    /// <summary>
    /// An msync begun by <see cref="BeginMsync"/> ended: one that succeeded raises <see cref="Synced"/> to
    /// <paramref name="covered"/> (never lowers it: an msync ending after a later one), a failed one is kept for later
    /// waiters when <paramref name="keepFailure"/>; the last one to end after the close unmaps the file.
    /// </summary>
    private void EndMsync(long covered, BrokerException? failure, bool keepFailure)
    {
        lock (_syncLock)
        {
            if (failure is null)
            {
                if (covered > Volatile.Read(ref _synced))
                {
                    Volatile.Write(ref _synced, covered);
                }
            }
            else if (keepFailure)
            {
                KeepFailure(covered, failure);
            }

            _inFlight--;
            UnmapIfDone();
        }
    }

    /// <summary>Under <see cref="_syncLock"/>: unmaps the file once it is closed and no msync is in flight.</summary>
    private void UnmapIfDone()
    {
        if (!_disposed || _inFlight > 0 || _unmapped)
        {
            return;
        }

        _unmapped = true;
        _view.SafeMemoryMappedViewHandle.ReleasePointer();
        _view.Dispose();
        _map.Dispose();
    }

    /// <summary>Forces the mapping to disk (msync) now, on the caller's thread: needed only against OS crashes and power loss.</summary>
    public void Flush()
    {
        long covered;
        lock (_syncLock)
        {
            ObjectDisposedException.ThrowIf(_closing, this);
            covered = Volatile.Read(ref _requested);
            BeginMsync();
        }

        BrokerException? failure = null;
        try
        {
            _view.Flush();
        }
        catch (Exception e)
        {
            failure = new BrokerException(BrokerErrorCode.StorageError, $"msync of '{Path}' failed: {e.Message}");
            throw;
        }
        finally
        {
            EndMsync(covered, failure, keepFailure: false);
        }

        CompleteWaiters(null);
    }

    /// <summary>The flusher's pool work item for one file: <see cref="StateFileFlusher.Run"/>.</summary>
    private sealed class SyncWorkItem(MappedStateFile file) : IThreadPoolWorkItem
    {
        public void Execute() => file._flusher!.Run(file);
    }
}
