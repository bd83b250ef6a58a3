using System.Diagnostics;
using System.Runtime.CompilerServices;
using FastBroker.Journal.Internal;

namespace FastBroker.Journal;

/// <summary>The flusher thread and durability waiters.</summary>
public sealed partial class JournalLog
{
    private const int PrefaultChunkBytes = 1 << 20; // 1 MiB per madvise: a stop never waits behind more than one chunk
    internal const int MinPrefaultWindow = 1 << 20;
    private const int FullAllocationAfter = 1 << 20; // a segment that took this much is not quiet: all its blocks at once
    private const long PrefaultLookaheadMs = 1000; // the window covers this long of writing at the measured rate
    private const int MaxPooledWaiters = 256;

    private readonly Thread _flusher;
    private readonly Thread _prefaulter;
    private readonly object _prefaultSignal = new();
    private volatile bool _prefaultStopping;
    private readonly object _signal = new(); // Monitor wait/pulse (System.Threading.Lock has no condition variable)
    private readonly object _waitLock = new();
    private readonly List<DurableWaiter> _waiters = [];
    private readonly Stack<DurableWaiter> _waiterPool = new();
    private int _flushRequested;
    private bool _stopping;
    private int _syncWaiters;
    private int _waiterCount;
    private bool _prefaultSupported = true;
    private long _lastRetentionTicks;
    private Segment? _spare;
    private Segment? _preparing;
    private long _spareRetryAt;
    private int _prefaultWindow = MinPrefaultWindow; // pre-fault thread only
    private volatile bool _prefaultIdle;
    private bool _prefaultKick; // writer thread only: a roll's wake has not got through yet
    private long _prefaultWakeBytes = long.MaxValue; // the writer wakes the pre-fault thread once it appended this many bytes
    private long _rateBytes;
    private long _rateTicks;

    /// <summary>
    /// Completes once the record at <paramref name="offset"/> is durable (<see cref="DurableOffset"/> &gt;
    /// <paramref name="offset"/>). Already durable: completes synchronously without allocating. Under group
    /// commit a waiter also wakes the flusher, so it never depends on someone else calling <see cref="Commit"/>;
    /// under <see cref="DurabilityPolicy.None"/> it completes at the writer's next commit. Any thread.
    /// </summary>
    /// <exception cref="JournalException">A flush failed (the journal is faulted).</exception>
    /// <exception cref="ObjectDisposedException">The journal was disposed before the record became durable.</exception>
    public ValueTask WaitForDurableAsync(long offset, CancellationToken cancellationToken = default)
    {
        if (Volatile.Read(ref _durableOffset) > offset)
        {
            return default;
        }

        return WaitForDurableSlow(offset, cancellationToken);
    }

    /// <summary>Blocks until the record at <paramref name="offset"/> is durable or the timeout passes (false). Any thread.</summary>
    /// <inheritdoc cref="WaitForDurableAsync"/>
    public bool WaitForDurable(long offset, TimeSpan timeout)
    {
        if (Volatile.Read(ref _durableOffset) > offset)
        {
            return true;
        }

        var deadline = Stopwatch.GetTimestamp() + (long)(timeout.TotalSeconds * Stopwatch.Frequency);
        lock (_waitLock)
        {
            _syncWaiters++;
            Volatile.Write(ref _waiterCount, _waiters.Count + _syncWaiters);
            try
            {
                if (_policy == DurabilityPolicy.GroupCommit)
                {
                    RequestFlush();
                }

                while (Volatile.Read(ref _durableOffset) <= offset)
                {
                    ThrowIfUnusable();
                    var remaining = deadline - Stopwatch.GetTimestamp();
                    if (remaining <= 0)
                    {
                        return false;
                    }

                    Monitor.Wait(_waitLock, TimeSpan.FromSeconds(Math.Min(remaining, Stopwatch.Frequency) / (double)Stopwatch.Frequency));
                }

                return true;
            }
            finally
            {
                _syncWaiters--;
                Volatile.Write(ref _waiterCount, _waiters.Count + _syncWaiters);
            }
        }
    }

    private ValueTask WaitForDurableSlow(long offset, CancellationToken cancellationToken)
    {
        if (_fault is { } fault)
        {
            return ValueTask.FromException(new JournalException(JournalErrorCode.Faulted, "The journal is faulted: " + fault.Message, fault));
        }

        if (_disposed)
        {
            return ValueTask.FromException(new ObjectDisposedException(nameof(JournalLog)));
        }

        if (cancellationToken.IsCancellationRequested)
        {
            return ValueTask.FromCanceled(cancellationToken);
        }

        DurableWaiter waiter;
        lock (_waitLock)
        {
            waiter = _waiterPool.Count > 0 ? _waiterPool.Pop() : new DurableWaiter(this);
        }

        // Register before the flusher can see the waiter: once listed it may complete and be recycled at any time.
        waiter.Target = offset;
        var version = waiter.Version;
        waiter.Register(cancellationToken);
        bool satisfied, listed = false;
        lock (_waitLock)
        {
            satisfied = Volatile.Read(ref _durableOffset) > offset;
            if (!satisfied && !cancellationToken.IsCancellationRequested)
            {
                _waiters.Add(waiter);
                Volatile.Write(ref _waiterCount, _waiters.Count + _syncWaiters);
                listed = true;
            }
        }

        if (!listed)
        {
            waiter.ClearRegistration(); // outside the lock: it waits for a running callback, which takes the lock
            ReturnWaiter(waiter);
            return satisfied ? default : ValueTask.FromCanceled(cancellationToken);
        }

        if (_policy == DurabilityPolicy.GroupCommit || _disposed || _fault is not null)
        {
            RequestFlush();
        }

        return new ValueTask(waiter, version);
    }

    internal void ReturnWaiter(DurableWaiter waiter)
    {
        lock (_waitLock)
        {
            if (_waiterPool.Count < MaxPooledWaiters)
            {
                _waiterPool.Push(waiter);
            }
        }
    }

    internal void CancelWaiter(DurableWaiter waiter, CancellationToken token)
    {
        lock (_waitLock)
        {
            var i = _waiters.IndexOf(waiter);
            if (i < 0)
            {
                return; // already completed by the flusher
            }

            _waiters.RemoveAt(i);
            Volatile.Write(ref _waiterCount, _waiters.Count + _syncWaiters);
            waiter.Fail(new OperationCanceledException(token));
        }
    }

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

    private void CompleteWaiters()
    {
        if (Volatile.Read(ref _waiterCount) == 0)
        {
            return;
        }

        lock (_waitLock)
        {
            var durable = Volatile.Read(ref _durableOffset);
            for (var i = _waiters.Count - 1; i >= 0; i--)
            {
                var w = _waiters[i];
                if (w.Target < durable)
                {
                    _waiters[i] = _waiters[^1];
                    _waiters.RemoveAt(_waiters.Count - 1);
                    w.Complete();
                }
            }

            Volatile.Write(ref _waiterCount, _waiters.Count + _syncWaiters);
            if (_syncWaiters > 0)
            {
                Monitor.PulseAll(_waitLock);
            }
        }
    }

    private void FailAllWaiters(Exception error)
    {
        lock (_waitLock)
        {
            foreach (var w in _waiters)
            {
                w.Fail(error);
            }

            _waiters.Clear();
            Volatile.Write(ref _waiterCount, _syncWaiters);
            Monitor.PulseAll(_waitLock);
        }
    }

    /// <summary>
    /// The pre-fault thread. Populating a 256 MiB segment is up to a second of kernel time in runs of milliseconds,
    /// which on a small machine would take a core from the writer, the publishers or the consumers (measured: the
    /// writer waited 21 ms behind one run). At <c>SCHED_IDLE</c> it gets only CPU time nobody else wants and is
    /// preempted the moment another thread is runnable; on a saturated machine it falls behind, and the writer then
    /// takes the page faults itself or creates the next segment itself, as without pre-faulting.
    /// </summary>
    private void PrefaultLoop()
    {
        Native.TrySetIdlePriority();
        while (true)
        {
            lock (_prefaultSignal)
            {
                if (!_prefaultStopping && !PrefaultPending())
                {
                    Volatile.Write(ref _prefaultWakeBytes, WakeBytes());
                    _prefaultIdle = true;
                    Monitor.Wait(_prefaultSignal, 1000);
                    _prefaultIdle = false;
                }

                if (_prefaultStopping)
                {
                    break;
                }
            }

            try
            {
                PrefaultStep();
            }
            catch (Exception e) when (e is JournalException or IOException or UnauthorizedAccessException)
            {
                // Pre-faulting is only ahead-of-time work (the writer does it itself when this falls behind): back off.
                _spareRetryAt = Environment.TickCount64 + 1000;
                lock (_prefaultSignal)
                {
                    if (!_prefaultStopping)
                    {
                        Monitor.Wait(_prefaultSignal, 100);
                    }
                }
            }
        }

        DiscardSpare(ref _preparing);
        DiscardSpare(ref _spare);
    }

    /// <summary>The pre-fault thread waits with nothing to do (tests: its work for the current position is done).</summary>
    internal bool PrefaultIdle => _prefaultIdle;

    /// <summary>
    /// Writer thread, after a roll took the spare: the pre-fault thread must look at the new segment. Without waiting
    /// for its lock (see <see cref="WakePrefaulterIfDue"/>): until a wake gets through, every batch tries again.
    /// </summary>
    private void WakePrefaulterAfterRoll()
    {
        if (_options.PrefaultSegments)
        {
            _prefaultKick = true;
            TryWakePrefaulter();
        }
    }

    /// <summary>
    /// Writer thread, once per batch: the writer came within half a window of the pre-faulted pages. Never waits for
    /// the lock: the pre-fault thread runs at <c>SCHED_IDLE</c> and may be descheduled holding it (priority
    /// inversion). If it holds it, it is awake and sets the next wake point from the writer's position before it
    /// waits again; a wake point already passed by then fires on the writer's next batch.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private void WakePrefaulterIfDue()
    {
        if (_appendedBytes >= Volatile.Read(ref _prefaultWakeBytes) || _prefaultKick)
        {
            TryWakePrefaulter();
        }
    }

    [MethodImpl(MethodImplOptions.NoInlining)]
    private void TryWakePrefaulter()
    {
        if (Monitor.TryEnter(_prefaultSignal))
        {
            try
            {
                // Received if it waits; if it is working, it looks at the state (this roll included) before it
                // waits again. Only a failed TryEnter (it is deciding, maybe from older state) needs another try.
                Volatile.Write(ref _prefaultWakeBytes, long.MaxValue);
                Monitor.Pulse(_prefaultSignal);
                _prefaultKick = false;
            }
            finally
            {
                Monitor.Exit(_prefaultSignal);
            }
        }
    }

    /// <summary>
    /// How far ahead of the writer to pre-fault, from the rate it wrote at since the last look: enough for
    /// <see cref="PrefaultLookaheadMs"/> of writing, a power of two between <see cref="MinPrefaultWindow"/> and the
    /// segment size. A busy journal gets its whole segment and a prepared spare as before; a quiet one (most topics
    /// of a broker with many) keeps a few MiB of dirty page cache instead of two segments' worth.
    /// </summary>
    internal static int PrefaultWindowFor(long bytes, long elapsedTicks, int segmentSize)
    {
        var wanted = elapsedTicks <= 0 ? long.MaxValue : (long)((double)bytes * PrefaultLookaheadMs * Stopwatch.Frequency / 1000 / elapsedTicks);
        var window = (long)MinPrefaultWindow;
        while (window < wanted && window < segmentSize)
        {
            window <<= 1;
        }

        return (int)Math.Min(window, segmentSize);
    }

    /// <summary>Pre-fault thread: re-estimates the window from the bytes appended since the last estimate.</summary>
    private void UpdatePrefaultWindow()
    {
        var now = Stopwatch.GetTimestamp();
        if (now - _rateTicks < Stopwatch.Frequency / 50)
        {
            return; // over shorter spans one record looks like a flood
        }

        var bytes = Volatile.Read(ref _appendedBytes);
        if (_rateTicks != 0)
        {
            // Grows at once, shrinks by half at most per look: a pause does not make a resuming writer take faults.
            var window = PrefaultWindowFor(bytes - _rateBytes, now - _rateTicks, _options.SegmentSize);
            _prefaultWindow = Math.Max(window, Math.Max(MinPrefaultWindow, _prefaultWindow / 2));
        }

        _rateBytes = bytes;
        _rateTicks = now;
    }

    /// <summary>
    /// When the writer should wake the pre-fault thread next, in appended bytes (a count that runs across rolls, so
    /// a wake point computed just before a roll still fires soon after it). Pre-fault thread, under the signal lock.
    /// </summary>
    private long WakeBytes()
    {
        if (!_options.PrefaultSegments || _prefaultStopping)
        {
            return long.MaxValue;
        }

        var segments = Volatile.Read(ref _segments);
        if (segments.Length == 0 || segments[^1] is not { IsClosed: false } last)
        {
            return Volatile.Read(ref _appendedBytes); // a roll in progress: look again at the writer's next batch
        }

        var position = Segment.PositionOf(last.Published);
        var appended = Volatile.Read(ref _appendedBytes); // read after the position: at worst the wake comes a little late
        var wake = long.MaxValue;
        if (_prefaultSupported && last.PrefaultedTo < last.Size)
        {
            wake = Math.Max(0, last.PrefaultedTo - (_prefaultWindow / 2));
        }

        if (_prefaultSupported && Volatile.Read(ref _spare) is null && Environment.TickCount64 >= _spareRetryAt)
        {
            wake = Math.Min(wake, Math.Max(0, last.Size - _prefaultWindow)); // (no spare without pre-faulting, nor while backing off)
        }

        return wake == long.MaxValue ? long.MaxValue : appended + (wake - position);
    }

    /// <summary>The pre-fault target of the active segment: a window ahead of the writer.</summary>
    private int PrefaultTarget(Segment active) =>
        (int)Math.Min(active.Size, (long)Segment.PositionOf(active.Published) + _prefaultWindow);

    /// <summary>The writer is within a window of the active segment's end: time to prepare the next one.</summary>
    private bool SpareDue(Segment[] segments) =>
        segments.Length == 0 || segments[^1] is not { IsClosed: false } last
        || last.Size - Segment.PositionOf(last.Published) <= _prefaultWindow;

    private bool PrefaultPending()
    {
        if (!_options.PrefaultSegments || !_prefaultSupported || _prefaultStopping)
        {
            return false;
        }

        UpdatePrefaultWindow();
        var segments = Volatile.Read(ref _segments);
        if (segments.Length > 0 && segments[^1] is { IsClosed: false } last && last.PrefaultedTo < PrefaultTarget(last))
        {
            return true;
        }

        return Volatile.Read(ref _spare) is null && SpareDue(segments) && Environment.TickCount64 >= _spareRetryAt;
    }

    /// <summary>
    /// Page faults cost microseconds each on a VM, so the writer must never take them: pre-fault the active
    /// segment a window ahead of the writer, then, once the writer nears its end, prepare the next segment
    /// (allocate, map, populate its first window) under a temporary name, a chunk per loop turn so a group commit
    /// never waits behind more than one chunk.
    /// </summary>
    private void PrefaultStep()
    {
        if (!PrefaultPending())
        {
            return;
        }

        var segments = Volatile.Read(ref _segments);
        if (segments.Length > 0 && segments[^1] is { IsClosed: false } last && last.PrefaultedTo < PrefaultTarget(last))
        {
            if (!last.TryAcquire())
            {
                return;
            }

            try
            {
                var from = Math.Max(last.PrefaultedTo, Segment.PositionOf(last.Published));
                PrefaultChunk(last, from);
            }
            finally
            {
                last.Release();
            }

            return;
        }

        try
        {
            if (_preparing is null && _prefaultStopping)
            {
                return;
            }

            _preparing ??= Segment.CreateBlank(Path.Combine(_directory, $"spare-{Guid.NewGuid():N}.prep"), _options.SegmentSize, _indexCapacity);
            PrefaultChunk(_preparing, _preparing.PrefaultedTo);
            if (_preparing.PrefaultedTo >= Math.Min(_preparing.Size, _prefaultWindow) || !_prefaultSupported)
            {
                Volatile.Write(ref _spare, _preparing);
                _preparing = null;
            }
        }
        catch (Exception e) when (e is JournalException or IOException or UnauthorizedAccessException)
        {
            // No spare (disk full, say): the writer will try to create the segment itself, and report failure.
            DiscardSpare(ref _preparing);
            _spareRetryAt = Environment.TickCount64 + 1000;
        }
    }

    private void PrefaultChunk(Segment segment, int from)
    {
        var to = Math.Min(segment.Size, from + PrefaultChunkBytes);
        AllocateAhead(segment, to); // blocks first: populating a hole on a full disk would fail in the writer's pages
        if (!segment.Prefault(from, to))
        {
            _prefaultSupported = false; // kernel before 5.14: the writer takes the page faults itself
            return;
        }

        segment.PrefaultedTo = to;
    }

    /// <summary>
    /// Blocks up to <paramref name="to"/>, and the whole segment at once when it is not quiet (the writer passed
    /// <see cref="FullAllocationAfter"/>, or it is the spare, prepared only for a journal that fills segments): each
    /// fallocate on the file the writer is storing into competes with its page faults (measured: p99 at 100k msg/s
    /// several times worse with a fallocate per 2 MiB), so a busy segment gets one. Falls back to just
    /// <paramref name="to"/> on a disk too full for the rest.
    /// </summary>
    private void AllocateAhead(Segment segment, int to)
    {
        if (segment.AllocatedTo >= segment.Size)
        {
            return;
        }

        var busy = !ReferenceEquals(segment, Volatile.Read(ref _segments) is { Length: > 0 } s ? s[^1] : null)
            || Segment.PositionOf(segment.Published) >= FullAllocationAfter;
        if (busy)
        {
            try
            {
                segment.AllocateTo(segment.Size);
                return;
            }
            catch (JournalFullException)
            {
                // Not room for the whole segment: a chunk at a time, as long as there is room.
            }
        }

        segment.AllocateTo(to);
    }

    /// <summary>Takes the prepared spare segment, if one is ready (writer thread, at roll).</summary>
    private Segment? TakeSpare() => Interlocked.Exchange(ref _spare, null);

    private static void DiscardSpare(ref Segment? spare)
    {
        var s = spare;
        spare = null;
        if (s is not null)
        {
            s.ForceUnmap();
            Segment.TryDelete(s.FilePath);
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
