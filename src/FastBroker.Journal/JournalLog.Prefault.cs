using System.Diagnostics;
using System.Runtime.CompilerServices;
using FastBroker.Journal.Internal;

namespace FastBroker.Journal;

/// <summary>The pre-fault thread: pages ahead of the writer, disk blocks ahead of it, and the spare segment for its next roll.</summary>
public sealed partial class JournalLog
{
    /// <summary>
    /// The pre-fault thread. Populating a 256 MiB segment is up to a second of kernel time in runs of milliseconds,
    /// which on a small machine would take a core from the writer, the publishers or the consumers (measured: the
    /// writer waited 21 ms behind one run). At <c>SCHED_IDLE</c> it gets only CPU time nobody else wants and is
    /// preempted the moment another thread is runnable; on a saturated machine it falls behind, and the writer then
    /// takes the page faults itself or creates the next segment itself, as without pre-faulting.
    /// </summary>
    /// <remarks>
    /// <c>SCHED_IDLE</c> alone does not keep it off a busy thread's CPU: a thread that waits by yielding (the ring's
    /// default wait strategy, a publisher's pacing loop) stays runnable, so no wake-up preempts this one, and under EEVDF
    /// every <c>sched_yield</c> pushes the yielder's deadline a slice further out; after enough yields this thread wins
    /// the CPU and kept it for its whole populate (measured: the journaler runnable but not running for 13-17 ms, every
    /// ~9 MiB of journal, while this thread zeroed readahead folios). So it populates a small chunk at a time
    /// (<see cref="PrefaultChunkBytes"/>, at most one huge folio of work) and after each one that took real time (more
    /// than 50 µs: it zeroed pages) leaves the run queue for <see cref="PrefaultPauseNs"/> (a sleep, not a yield): a
    /// thread it displaced runs again within one chunk. Chunks of pages already there cost microseconds and go on.
    /// </remarks>
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
                var started = Stopwatch.GetTimestamp();
                if (PrefaultStep() && Stopwatch.GetTimestamp() - started > s_prefaultPauseAfterTicks)
                {
                    Native.SleepNanoseconds(PrefaultPauseNs);
                    Interlocked.Increment(ref _prefaultPauses);
                }
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

    /// <summary>Tests: how many times the pre-fault thread left the run queue after a chunk of work.</summary>
    internal long PrefaultPauses => Interlocked.Read(ref _prefaultPauses);

    private static readonly long s_prefaultPauseAfterTicks = Stopwatch.Frequency / 20_000; // 50 µs
    private long _prefaultPauses;

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

    /// <summary>
    /// From this append rate on, the range still to be appended takes huge (2 MiB) page-cache folios; below it, 4 KiB
    /// ones (<see cref="Segment.SetTailFolios"/>). Huge folios populate eight times faster, which a journal writing
    /// hundreds of MB/s needs, but each is one unsplittable zeroing of ~0.5-1 ms that displaces a latency-sensitive
    /// thread; at 32 MiB/s, 4 KiB folios cost the pre-fault thread a few percent of one core. Tests set it.
    /// </summary>
    internal double HugeFoliosFromBytesPerSecond { get; set; } = 32 << 20;

    /// <summary>Looks in a row under a quarter of the rate before a huge-folio journal goes back to 4 KiB folios.</summary>
    internal const int SlowLooksBeforeSmallFolios = 5;

    /// <summary>
    /// The folio choice after a rate look: huge at once from <paramref name="threshold"/> (a burst must not fault
    /// 4 KiB at a time), back to 4 KiB only after <see cref="SlowLooksBeforeSmallFolios"/> looks in a row under a
    /// quarter of it (each switch splits the mapping, so a rate near the threshold must not flip it back and forth).
    /// </summary>
    internal static bool HugeFoliosNext(bool huge, double rate, int slowLooks, double threshold) =>
        rate >= threshold || (huge && slowLooks < SlowLooksBeforeSmallFolios);

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
            var rate = (double)(bytes - _rateBytes) * Stopwatch.Frequency / (now - _rateTicks);
            _slowLooks = rate < HugeFoliosFromBytesPerSecond / 4 ? _slowLooks + 1 : 0;
            _hugeFolios = HugeFoliosNext(_hugeFolios, rate, _slowLooks, HugeFoliosFromBytesPerSecond);
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
    /// <returns>Whether it did some work (populated, allocated or created), after which the loop pauses.</returns>
    private bool PrefaultStep()
    {
        if (!PrefaultPending())
        {
            return false;
        }

        var segments = Volatile.Read(ref _segments);
        if (segments.Length > 0 && segments[^1] is { IsClosed: false } last && last.PrefaultedTo < PrefaultTarget(last))
        {
            if (!last.TryAcquire())
            {
                return false;
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

            return true;
        }

        try
        {
            if (_preparing is null && _prefaultStopping)
            {
                return false;
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

        return true;
    }

    private void PrefaultChunk(Segment segment, int from)
    {
        segment.SetTailFolios(from, _hugeFolios);
        var to = Math.Min(segment.Size, from + (segment.TailHuge ? PrefaultChunkBytes : SmallFolioChunkBytes));
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
}
