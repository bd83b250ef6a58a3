using System.Diagnostics;
using FastBroker.Journal.Internal;

namespace FastBroker.Journal;

/// <summary>Durability waiters: waiting until a record is durable, and completing or failing the waits.</summary>
public sealed partial class JournalLog
{
    // Per madvise: a stop, and a thread the pre-fault thread displaced, never wait behind more than one chunk, which is
    // at most one huge folio to zero (or 64 small pages) on an append range advised MADV_RANDOM.
    internal const int PrefaultChunkBytes = 256 << 10;
    internal const int SmallFolioChunkBytes = 64 << 10; // 16 pages of 4 KiB: tens of µs per chunk (see SetTailFolios)
    internal const long PrefaultPauseNs = 200_000; // off the run queue after each chunk (plus timer slack)
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
    private bool _hugeFolios; // pre-fault thread only: the append range takes huge folios (a fast journal)
    private int _slowLooks; // pre-fault thread only: rate looks in a row under a quarter of HugeFoliosFromBytesPerSecond
    private long _rateBytes;
    private long _rateTicks;

    /// <summary>
    /// Completes once the record at <paramref name="offset"/> is durable (<see cref="DurableOffset"/> &gt;
    /// <paramref name="offset"/>). Already durable: completes synchronously without allocating. Under group
    /// commit a waiter also wakes the flusher, so it never depends on someone else calling <see cref="Commit"/>;
    /// under <see cref="DurabilityPolicy.None"/> it completes at the writer's next commit. Any thread.
    /// </summary>
    /// <exception cref="JournalException">A flush failed (the journal is faulted): the waits listed then fail with its
    /// error, a wait begun after it with <see cref="JournalErrorCode.Faulted"/>, never left waiting.</exception>
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

    /// <summary>Tests: called in a wait for durability after its first checks, before its waiter is listed.</summary>
    internal Action? BeforeWaiterListed { get; set; }

    private ValueTask WaitForDurableSlow(long offset, CancellationToken cancellationToken)
    {
        if (UnusableError() is { } error)
        {
            return ValueTask.FromException(error);
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
        BeforeWaiterListed?.Invoke();
        bool satisfied, listed = false;
        Exception? unusable = null;
        lock (_waitLock)
        {
            satisfied = Volatile.Read(ref _durableOffset) > offset;
            if (!satisfied && !cancellationToken.IsCancellationRequested)
            {
                // Read again under the lock: a fault or the close since the checks above has failed the listed waiters
                // already (FailAllWaiters, under this lock, after either is set), and nothing fails a waiter listed after.
                unusable = UnusableError();
                if (unusable is null)
                {
                    _waiters.Add(waiter);
                    Volatile.Write(ref _waiterCount, _waiters.Count + _syncWaiters);
                    listed = true;
                }
            }
        }

        if (!listed)
        {
            waiter.ClearRegistration(); // outside the lock: it waits for a running callback, which takes the lock
            ReturnWaiter(waiter);
            return satisfied ? default : unusable is not null ? ValueTask.FromException(unusable) : ValueTask.FromCanceled(cancellationToken);
        }

        if (_policy == DurabilityPolicy.GroupCommit || _disposed || _fault is not null)
        {
            RequestFlush();
        }

        return new ValueTask(waiter, version);
    }

    /// <summary>What a wait for durability fails with now: the fault, or the close; null while the journal is usable.</summary>
    private Exception? UnusableError()
    {
        if (_fault is { } fault)
        {
            return new JournalException(JournalErrorCode.Faulted, "The journal is faulted: " + fault.Message, fault);
        }

        return _disposed ? new ObjectDisposedException(nameof(JournalLog)) : null;
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
}
