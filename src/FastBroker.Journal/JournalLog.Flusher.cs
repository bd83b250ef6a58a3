using FastBroker.Journal.Internal;

namespace FastBroker.Journal;

/// <summary>The flusher thread: group commit, sealing finished segments, and faulting the journal when a flush fails.</summary>
public sealed partial class JournalLog
{
    /// <summary>Wakes the flusher (cheap when it is already awake: one interlocked exchange).</summary>
    private void RequestFlush()
    {
        if (Interlocked.Exchange(ref _flushRequested, 1) == 0)
        {
            lock (_signal)
            {
                Monitor.Pulse(_signal);
            }
        }
    }

    private void StopFlusher()
    {
        lock (_prefaultSignal)
        {
            _prefaultStopping = true;
            Monitor.Pulse(_prefaultSignal);
        }

        if ((_prefaulter.ThreadState & System.Threading.ThreadState.Unstarted) == 0)
        {
            _prefaulter.Join();
        }

        lock (_signal)
        {
            _stopping = true;
            Monitor.Pulse(_signal);
        }

        if ((_flusher.ThreadState & System.Threading.ThreadState.Unstarted) == 0)
        {
            _flusher.Join();
        }
    }

    /// <summary>Tests: called at the end of each flusher pass; what it throws fails the pass as a failed msync would.</summary>
    internal Action? FlusherPassFault { get; set; }

    private void FlusherLoop()
    {
        var idleMs = _policy == DurabilityPolicy.Interval ? Math.Max(1, (int)_options.FlushInterval.TotalMilliseconds) : 1000;
        while (true)
        {
            bool stopping;
            lock (_signal)
            {
                if (Volatile.Read(ref _flushRequested) == 0 && !_stopping)
                {
                    Monitor.Wait(_signal, idleMs);
                }

                stopping = _stopping;
            }

            Interlocked.Exchange(ref _flushRequested, 0);
            try
            {
                if (_policy != DurabilityPolicy.None && _fault is null)
                {
                    FlushOnce();
                }

                CompleteWaiters();
                if (_fault is null)
                {
                    SealFinishedSegments();
                }

                if (stopping)
                {
                    return;
                }

                MaybeApplyRetention();
                FlusherPassFault?.Invoke();
            }
            catch (Exception e) when (e is JournalException or IOException or UnauthorizedAccessException)
            {
                Fault(e as JournalException ?? new JournalException(JournalErrorCode.IoError, "Journal flush failed: " + e.Message, e));
                FailAllWaiters(_fault!);
                if (stopping)
                {
                    return;
                }
            }
        }
    }

    /// <summary>
    /// Faults the journal (flusher thread). The append fast path does not read <see cref="_fault"/>: the write limit it
    /// compares with is zeroed instead, so the writer's next append takes the slow path, which throws
    /// <see cref="JournalErrorCode.Faulted"/>; otherwise it went on taking records (and the broker confirming
    /// <c>Written</c> ones) until the segment's allocated end.
    /// </summary>
    /// <remarks>
    /// Zeroed before the fault is published (whoever sees the fault sees the zero) and again after it: the writer
    /// may be storing a new limit in <see cref="EnsureRoom"/> meanwhile, and it reads the fault after a full fence
    /// there, so either it sees the fault and zeroes the limit itself, or its store precedes the second zero.
    /// </remarks>
    private void Fault(JournalException fault)
    {
        Volatile.Write(ref _writeLimit, 0);
        _fault = fault;
        Volatile.Write(ref _writeLimit, 0);
    }

    /// <summary>
    /// One group commit: sync every segment range appended since the last sync (page-aligned msync), then
    /// publish the durable marks and offset. Appends racing with the sync are picked up next time.
    /// </summary>
    private void FlushOnce()
    {
        var segments = Volatile.Read(ref _segments);
        var i = FindSegmentIndex(segments, Volatile.Read(ref _durableOffset));
        if (i < 0)
        {
            return;
        }

        long durableOffset = -1;
        long bytes = 0;
        for (; i < segments.Length; i++)
        {
            var s = segments[i];
            var closed = s.IsClosed; // read before Published: if closed, Published is final
            var published = s.Published;
            var durable = s.Durable;
            if (published != durable)
            {
                SyncDirectoryIfNew(s);
                s.Sync(Segment.PositionOf(durable), Segment.PositionOf(published));
                bytes += Segment.PositionOf(published) - Segment.PositionOf(durable);
                s.SetDurable(published);
            }

            durableOffset = s.BaseOffset + Segment.CountOf(published);
            if (!closed)
            {
                break;
            }
        }

        if (bytes > 0)
        {
            Volatile.Write(ref _durableBytes, _durableBytes + bytes);
        }

        if (durableOffset > Volatile.Read(ref _durableOffset))
        {
            Volatile.Write(ref _durableOffset, durableOffset);
        }
    }

    private void SyncDirectoryIfNew(Segment segment)
    {
        if (segment.NeedsDirectorySync)
        {
            Native.SyncDirectory(_directory);
            segment.NeedsDirectorySync = false;
        }
    }

    /// <summary>
    /// Seals closed segments whose records are all durable: sync data, then write and sync the trailer, then the index
    /// file. Each under a reference of its own, so a segment retired meanwhile (retention deletes sealed segments; the
    /// writer retires an empty one it replaces) is never sealed, nor unmapped while being sealed.
    /// </summary>
    private void SealFinishedSegments()
    {
        foreach (var s in Volatile.Read(ref _segments))
        {
            if (!s.IsClosed || s.IsSealed || s.Durable != s.Published || !s.TryAcquire())
            {
                continue;
            }

            try
            {
                SyncDirectoryIfNew(s);
                s.Seal(NowUnixMs());
                var index = IndexFile.PathFor(s.FilePath);
                try
                {
                    IndexFile.Write(index, s.BaseOffset, Segment.PositionOf(s.Durable), s.Index.Snapshot());
                }
                catch (IOException)
                {
                    // Disk full, say: the index is rebuilt from the segment on the next open.
                }

                if (s.IsRetired)
                {
                    // Sealed, then deleted by a retention pass on another thread before this index file existed.
                    Segment.TryDelete(index);
                }
            }
            finally
            {
                s.Release();
            }
        }
    }

    private static int FindSegmentIndex(Segment[] segments, long offset)
    {
        int lo = 0, hi = segments.Length - 1, found = -1;
        while (lo <= hi)
        {
            var mid = (lo + hi) >>> 1;
            if (segments[mid].BaseOffset <= offset)
            {
                found = mid;
                lo = mid + 1;
            }
            else
            {
                hi = mid - 1;
            }
        }

        return found < 0 && segments.Length > 0 ? 0 : found;
    }
}
