using FastBroker.Journal.Internal;

namespace FastBroker.Journal;

/// <summary>
/// A journal of fixed-size, memory-mapped segment files (after FASTER's FasterLog): one thread appends with
/// <see cref="TryAppend(ReadOnlySpan{byte}, out long)"/> (or a <see cref="JournalBatch"/>), commits with
/// <see cref="Commit"/>, and anyone waits for durability with <see cref="WaitForDurableAsync"/>; readers
/// (<see cref="OpenReader(ReadStart, bool, bool)"/>) see durable records only, as spans over the mapping.
/// </summary>
/// <remarks>
/// <para><b>Threads.</b> Append, batch, <see cref="Commit"/> and <see cref="Dispose"/> belong to one writer thread
/// (the journaler; in the broker, a ring consumer). Waiting, reading, retention and the position properties are
/// safe from any thread. One background thread ("journal-flusher") syncs, seals finished segments, applies
/// retention and pre-faults the next pages.</para>
/// <para><b>Memory ordering.</b> The writer stores a record's bytes, then publishes the segment's packed
/// (count, end) word with a release write. The flusher reads it (acquire), syncs the range, and publishes the
/// durable word (release); readers acquire the durable word before touching bytes below it. So a reader can
/// never observe a partially written record.</para>
/// </remarks>
public sealed unsafe partial class JournalLog : IDisposable
{
    private readonly string _directory;
    private readonly JournalOptions _options;
    private readonly DurabilityPolicy _policy;
    private readonly FileStream _lock;
    private readonly Lock _segmentsLock = new();
    private readonly int _indexCapacity;
    // Readers are held weakly (JournalReader.Registration): one dropped undisposed is collected, and its finalizer
    // gives back its segment and leaves these lists; until then a cleared entry counts for nothing.
    private readonly List<WeakReference<JournalReader>> _pinningReaders = []; // readers that are retention floors, under _segmentsLock
    private readonly Lock _readersLock = new();
    private readonly HashSet<WeakReference<JournalReader>> _readers = []; // every open reader, under _readersLock (retention releases parked ones)
    private Segment[] _segments;
    private long _minRetainedOffset = long.MaxValue;
    private volatile bool _disposed;
    private volatile JournalException? _fault;

    private JournalLog(string directory, JournalOptions options, FileStream lockFile, List<Segment> segments, RecoveryReport report, long removedFrom, int indexCapacity)
    {
        _directory = directory;
        _options = options;
        _policy = options.Durability;
        _lock = lockFile;
        _indexCapacity = indexCapacity;
        _maxUndurableBytes = _policy == DurabilityPolicy.None ? long.MaxValue : options.MaxUndurableBytes;
        _epoch = options.Epoch;
        Recovery = report;
        RetentionFloor = options.RetentionFloor; // before the flusher starts: its first pass asks it
        _segments = [.. segments];
        for (var i = 0; i < _segments.Length - 1; i++)
        {
            _segments[i].Close(); // finished; the flusher seals any that are not sealed yet
        }

        // Recovery removed every segment file (a lost tail from the first one): continue where they began, since offsets
        // below it were given (retention deleted their segments), rather than give them again from InitialOffset.
        _nextOffset = segments.Count > 0 ? segments[^1].BaseOffset + Segment.CountOf(segments[^1].Published)
            : removedFrom >= 0 ? removedFrom : options.InitialOffset;
        foreach (var s in _segments)
        {
            // Appends never stamp a record earlier than the newest before it across a reopen either, also when the last
            // segment is empty or sealed: the newest one of any segment, not just of the one the writer continues in.
            // So far it is also the newest before this segment, which a start at a time binary searches.
            s.NewestBefore = _lastTimestamp;
            _lastTimestamp = Math.Max(_lastTimestamp, s.LastTimestamp);
        }

        if (segments.Count > 0 && !segments[^1].IsSealed)
        {
            Activate(segments[^1]);
        }
        else if (segments.Count > 0)
        {
            segments[^1].Close();
        }

        if (_policy != DurabilityPolicy.None)
        {
            // Recovered records may exist only in the page cache (the process died before its group commit). Flush
            // them, and the directory entries, before counting them durable: otherwise readers, idempotent retries and
            // a standby's durable acks would rely on records that a power loss can still take away.
            var synced = false;
            foreach (var s in _segments)
            {
                if (!s.IsSealed)
                {
                    s.Sync(0, Segment.PositionOf(s.Published));
                    synced = true;
                }
            }

            if (synced)
            {
                Native.SyncDirectory(directory);
            }
        }

        _appendedOffset = _durableOffset = _nextOffset;
        report.FirstOffset = segments.Count > 0 ? segments[0].BaseOffset : _nextOffset;
        report.NextOffset = _nextOffset;
        _flusher = new Thread(FlusherLoop) { IsBackground = true, Name = "journal-flusher" };
        _prefaulter = new Thread(PrefaultLoop) { IsBackground = true, Name = "journal-prefault" };
    }

    /// <summary>The journal directory.</summary>
    public string Directory => _directory;

    /// <summary>The options it was opened with.</summary>
    public JournalOptions Options => _options;

    /// <summary>What recovery found and changed when the journal was opened.</summary>
    public RecoveryReport Recovery { get; }

    /// <summary>The oldest retained offset (moves up when retention deletes segments).</summary>
    public long FirstOffset
    {
        get
        {
            var segments = Volatile.Read(ref _segments);
            return segments.Length > 0 ? segments[0].BaseOffset : NextOffset;
        }
    }

    /// <summary>Appended position: the offset the next append gets (every offset below it is appended).</summary>
    public long NextOffset => Volatile.Read(ref _appendedOffset);

    /// <summary>
    /// Durable position: every record with an offset below it is durable under the policy and visible to readers.
    /// </summary>
    public long DurableOffset => Volatile.Read(ref _durableOffset);

    /// <summary>Number of segment files currently retained.</summary>
    public int SegmentCount => Volatile.Read(ref _segments).Length;

    /// <summary>Bytes of segment files currently retained.</summary>
    public long SizeOnDisk => Volatile.Read(ref _segments).Sum(s => (long)s.Size);

    /// <summary>
    /// Retention never deletes a segment holding an offset at or above this. Default: no floor. (The broker uses
    /// <see cref="RetentionFloor"/>, which cannot go stale.)
    /// </summary>
    public long MinRetainedOffset
    {
        get => Volatile.Read(ref _minRetainedOffset);
        set => Volatile.Write(ref _minRetainedOffset, value);
    }

    /// <summary>
    /// Asked at the start of every retention or truncation pass (on the calling thread, outside the journal's locks):
    /// a second floor like <see cref="MinRetainedOffset"/>, computed when it is needed so that it can never be stale
    /// (the broker answers with its slowest open durable subscription or work-queue group). Null: none. If it throws,
    /// the floor is unknown and that pass deletes nothing (counted in <see cref="RetentionFloorFailures"/>, logged to
    /// <see cref="JournalOptions.Log"/> once per cause); the journal is not faulted and the next pass asks again.
    /// Starts as <see cref="JournalOptions.RetentionFloor"/>.
    /// </summary>
    public Func<long>? RetentionFloor { get; set; }

    /// <summary>
    /// Opens (recovering if needed) or creates the journal in <paramref name="directory"/>. Recovery truncates a
    /// torn tail and reports it in <see cref="Recovery"/>; corruption elsewhere throws.
    /// </summary>
    /// <exception cref="JournalCorruptionException">A sealed segment is damaged (names the file and position).</exception>
    /// <exception cref="JournalFullException">The first segment cannot be allocated.</exception>
    /// <exception cref="JournalException"><see cref="JournalErrorCode.IoError"/>: a file of the journal cannot be opened,
    /// created or mapped, or the journal is open elsewhere; the exception inside is the cause (an
    /// <see cref="IOException"/> whose HResult is the errno: EMFILE, ENOMEM… are a shortage that passes, not damage).
    /// A first segment on one of the last descriptors the process keeps in reserve is refused so (EMFILE).</exception>
    /// <exception cref="PlatformNotSupportedException">Not Linux on a little-endian CPU.</exception>
    public static JournalLog Open(string directory, JournalOptions? options = null)
    {
        options ??= JournalOptions.Default;
        options.Validate();
        ThrowIfUnsupportedPlatform();
        directory = Path.GetFullPath(directory);
        System.IO.Directory.CreateDirectory(directory);
        var lockFile = AcquireDirectoryLock(directory);
        JournalLog? journal = null;
        try
        {
            var indexCapacity = (options.SegmentSize / options.IndexIntervalBytes) + 2;
            var (segments, report, removedFrom) = JournalRecovery.Run(directory, options, indexCapacity);
            journal = new JournalLog(directory, options, lockFile, segments, report, removedFrom, indexCapacity);
            if (segments.Count == 0)
            {
                journal.Roll();
            }

            // The report is the caller's now: the repair log goes, durably, before the flusher or an append can change a
            // segment that its steps would otherwise redo at the next open.
            RepairLog.Complete(directory);
            journal._flusher.Start();
            if (options.PrefaultSegments)
            {
                journal._prefaulter.Start();
            }
            return journal;
        }
        catch (Exception e)
        {
            if (journal is not null)
            {
                foreach (var s in journal._segments)
                {
                    s.ForceUnmap();
                }
            }

            lockFile.Dispose();
            if (e is IOException or UnauthorizedAccessException)
            {
                // A file of the journal could not be opened: the cause (its errno as the HResult) goes inside.
                throw new JournalException(JournalErrorCode.IoError, $"Journal '{directory}' cannot be opened: {e.Message}", e);
            }

            throw;
        }
    }

    /// <summary>
    /// Flushes and seals what can be sealed, stops the flusher, fails pending waiters, and unmaps every segment
    /// no reader still holds. Call from the writer thread once it has stopped appending.
    /// </summary>
    public void Dispose()
    {
        if (_disposed)
        {
            return;
        }

        if (_policy == DurabilityPolicy.None && _fault is null && _active is not null)
        {
            CommitNone();
        }

        StopFlusher();
        _disposed = true;
        _writeLimit = 0;
        FailAllWaiters(new ObjectDisposedException(nameof(JournalLog)));
        Segment[] segments;
        lock (_segmentsLock)
        {
            segments = _segments;
            _segments = [];
        }

        foreach (var s in segments)
        {
            s.Release();
        }

        _lock.Dispose();
    }

    /// <summary>
    /// The file in the journal directory that an open journal holds with an exclusive flock (FileShare.None), so that a
    /// second process opening it fails at once; <see cref="JournalInspector.IsOpen"/> looks for that lock.
    /// </summary>
    internal const string LockFileName = "journal.lock";

    private static FileStream AcquireDirectoryLock(string directory)
    {
        var path = Path.Combine(directory, LockFileName);
        try
        {
            // FileShare.None takes an exclusive flock on Unix: a second writer process fails here, not later.
            return new FileStream(path, FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.None);
        }
        catch (IOException e) when (!Segment.IsNoSpace(e))
        {
            // EWOULDBLOCK: another open holds the lock; anything else (out of descriptors, say) is no such thing.
            var why = e.HResult == Native.EAgain ? "is already open" : "cannot be locked";
            throw new JournalException(JournalErrorCode.IoError, $"Journal '{directory}' {why} (lock file '{path}'): {e.Message}", e);
        }
    }

    private static void ThrowIfUnsupportedPlatform()
    {
        if (!OperatingSystem.IsLinux() || !BitConverter.IsLittleEndian)
        {
            throw new PlatformNotSupportedException("The journal needs Linux (posix_fallocate, mmap) on a little-endian CPU.");
        }
    }

    private void ThrowIfUnusable()
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        if (_fault is { } fault)
        {
            throw new JournalException(JournalErrorCode.Faulted, "The journal is faulted after a failed flush: " + fault.Message, fault);
        }
    }

    private static long NowUnixMs() => (DateTime.UtcNow.Ticks - DateTime.UnixEpoch.Ticks) / TimeSpan.TicksPerMillisecond;
}
