using System.IO.MemoryMappedFiles;
using System.Runtime.CompilerServices;
using FastBroker.Storage;
using Microsoft.Win32.SafeHandles;

namespace FastBroker.Engine;

/// <summary>
/// A small fixed-size file mapped into memory, used for broker state that must survive <c>kill -9</c> without a
/// syscall per update: a store into the mapping is in the page cache at once, so only an OS crash (not a process
/// crash) can lose it. When the durability asks for more (an <c>Fsynced</c> topic), the owner calls
/// <see cref="RequestSync"/> after its stores and the <see cref="StateFileFlusher"/> msyncs the file in the background,
/// one <c>msync</c> for every update made since its last one (a group commit, as the journal's flusher does).
/// </summary>
/// <remarks>Aligned 8-byte stores are atomic on x64 and arm64, so a reader after a crash sees either the old or the
/// new value of a slot, never a torn one. Not thread-safe against <see cref="Dispose"/>: owners serialize their
/// accesses with it (under their lock); an access after it throws <see cref="ObjectDisposedException"/> rather than
/// touching the unmapped pages (a SIGSEGV that kills the process). No <c>msync</c> runs under the file's lock (a slow or
/// hung one, a stalled disk, would hold every check, copy and close of the file behind it, and the owner's lock and the
/// broker timer's pass over every other file with them): each one is counted in flight under the lock and made outside
/// it, and the mapping is unmapped only once none is in flight (by the close, or by the last msync to end after it), so
/// no msync touches an unmapped range.</remarks>
internal sealed unsafe partial class MappedStateFile : IDisposable
{
    private readonly MemoryMappedFile _map;
    private readonly MemoryMappedViewAccessor _view;
    private readonly byte* _base;
    private readonly StateFileFlusher? _flusher;
    private readonly SafeFileHandle _handle; // the mapped file's descriptor, closed with the mapping
    private readonly object _syncLock = new(); // msyncs in flight against the close's unmapping; never held across an msync
    private readonly object _waitLock = new();
    private readonly List<(long Generation, TaskCompletionSource Done)> _waiters = [];
    private long _requested; // Interlocked: sync requests so far (a generation)
    private long _synced; // the generation the last completed msync covers
    private long _failedThrough; // under _waitLock: the generations the last failed msync was to cover (a waiter for one is failed at once)
    private Exception? _failure; // under _waitLock: that failure
    private int _queued; // 1 while the flusher holds this file in its queue
    private int _inFlight; // under _syncLock: msyncs running outside the lock (the flusher's, Flush's, the close's)
    private bool _closing; // under _syncLock: the close began (no msync starts after it but its own)
    private bool _unmapped; // under _syncLock
    private bool _disposed; // set once the close's msync ended (after _synced): nothing touches the mapping from then on

    private MappedStateFile(string path, SafeFileHandle handle, MemoryMappedFile map, MemoryMappedViewAccessor view, long length, bool created, StateFileFlusher? flusher)
    {
        Path = path;
        _handle = handle;
        _map = map;
        _view = view;
        Length = length;
        Created = created;
        _flusher = flusher;
        _resolvedPath = SystemRemovalCheck == RemovalCheck.ProcFd ? ResolvePath(path) : null;
        byte* p = null;
        _view.SafeMemoryMappedViewHandle.AcquirePointer(ref p);
        _base = p + _view.PointerOffset;
    }

    /// <summary>The file's path.</summary>
    public string Path { get; }

    /// <summary>Mapped length in bytes.</summary>
    public long Length { get; }

    /// <summary>True when the file did not exist and was created zero-filled.</summary>
    public bool Created { get; }

    /// <summary>The sync generation requested last (<see cref="RequestSync"/>); 0: never.</summary>
    public long SyncRequested => Volatile.Read(ref _requested);

    /// <summary>The sync generation the last completed <c>msync</c> covers: every update made before that request is on disk.</summary>
    public long Synced => Volatile.Read(ref _synced);

    /// <summary>
    /// What a state file being created is named until its bytes are written: <c>&lt;name&gt;.creating</c> in its
    /// directory, which no listing of state files (<c>*.pos</c>, <c>*.state</c>) takes for one.
    /// </summary>
    public const string CreatingSuffix = ".creating";

    /// <summary>
    /// Opens or creates <paramref name="path"/> with exactly <paramref name="length"/> bytes (a multiple of 8).
    /// <paramref name="flusher"/>: who msyncs it after <see cref="RequestSync"/> (null: nobody, the OS's writeback).
    /// A new file holds <paramref name="header"/> in its first slots and zeros after them before it gets its name: it is
    /// written and flushed under a temporary name (<see cref="CreatingSuffix"/>) and renamed into place, so a reader
    /// listing its directory (the primary's checks of its state files) never finds it short or without its header.
    /// A file removed after it was found or made and before it is opened (an operator removing a subscription's
    /// position file to start it anew while a client subscribes under that name), or whose temporary file is removed
    /// before its rename, is made anew, as a missing one is; a file removed each time, <see cref="OpenAttempts"/> times,
    /// fails the open with a <see cref="FileNotFoundException"/> naming it and saying so.
    /// </summary>
    public static MappedStateFile Open(string path, long length, StateFileFlusher? flusher = null, ReadOnlySpan<long> header = default)
    {
        if (length <= 0 || length % 8 != 0)
        {
            throw new ArgumentOutOfRangeException(nameof(length), "length must be a positive multiple of 8");
        }

        if ((long)header.Length * 8 > length)
        {
            throw new ArgumentOutOfRangeException(nameof(header), "the header is longer than the file");
        }

        var directory = System.IO.Path.GetDirectoryName(System.IO.Path.GetFullPath(path))!;
        var directoryCreated = !Directory.Exists(directory);
        Directory.CreateDirectory(directory);
        for (var attempt = 1; ; attempt++)
        {
            var created = !File.Exists(path) && Create(path, length, header, flusher);
            if (created && flusher is not null)
            {
                // A synced file's name must survive a power cut too, as a new journal segment's does.
                SyncDirectory(directory);
                if (directoryCreated)
                {
                    SyncDirectory(System.IO.Path.GetDirectoryName(directory)!);
                }
            }

            flusher?.Opening?.Invoke(path);
            FileStream stream;
            try
            {
                stream = new FileStream(path, FileMode.Open, FileAccess.ReadWrite, FileShare.ReadWrite);
            }
            catch (FileNotFoundException) when (attempt < OpenAttempts)
            {
                // Removed since it was found or made, or its temporary file before its rename (an operator starting a
                // subscription anew, say): made anew, as a missing file is.
                continue;
            }
            catch (FileNotFoundException e)
            {
                throw new FileNotFoundException($"{path} was removed each time it was found or made ({OpenAttempts} times) before it could be opened", path, e);
            }

            return Map(path, stream, length, created, flusher);
        }
    }

    /// <summary>How many times <see cref="Open"/> finds or makes the file when each one is removed before it opens it.</summary>
    private const int OpenAttempts = 3;

    /// <summary>
    /// Maps the file <paramref name="stream"/> opened (its descriptor, held by the mapping while it lives), padding one
    /// that was found shorter than <paramref name="length"/> with zeros first; the stream is closed when this fails.
    /// </summary>
    private static MappedStateFile Map(string path, FileStream stream, long length, bool created, StateFileFlusher? flusher)
    {
        MemoryMappedFile? map = null;
        try
        {
            // The mapping holds the file's descriptor while it lives: one the process keeps in reserve is refused.
            ResourceShortage.ThrowIfInReserve(stream.SafeFileHandle, path);
            if (!created)
            {
                Pad(stream, path, length);
            }

            map = MemoryMappedFile.CreateFromFile(stream, mapName: null, length, MemoryMappedFileAccess.ReadWrite, HandleInheritability.None, leaveOpen: false);
            var view = map.CreateViewAccessor(0, length, MemoryMappedFileAccess.ReadWrite);
            return new MappedStateFile(path, stream.SafeFileHandle, map, view, length, created, flusher);
        }
        catch (Exception) when (created)
        {
            // Not mapped (out of descriptors or memory, say): a zero-filled file left behind would open next time as
            // one whose state was lost (WasBlank), not as the new file it is.
            Close(map, stream);
            File.Delete(path);
            throw;
        }
        catch (Exception)
        {
            Close(map, stream);
            throw;
        }
    }

    /// <summary>The 8-byte slot at <paramref name="index"/> (byte offset index × 8).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public ref long Slot(long index)
    {
        if (_disposed)
        {
            ThrowDisposed();
        }

        return ref Unsafe.AsRef<long>(_base + (index * 8));
    }

    /// <summary>Reads a slot with acquire semantics.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public long Read(long index) => Volatile.Read(ref Slot(index));

    /// <summary>Writes a slot with release semantics (visible to a reader of the file once the store retires).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public void Write(long index, long value) => Volatile.Write(ref Slot(index), value);

    /// <summary>Bytes of the mapping as a span (for small headers and names).</summary>
    public Span<byte> Bytes(long offset, int length)
    {
        if (offset < 0 || length < 0 || offset + length > Length)
        {
            throw new ArgumentOutOfRangeException(nameof(offset));
        }

        if (_disposed)
        {
            ThrowDisposed();
        }

        return new Span<byte>(_base + offset, length);
    }

    private static void ThrowDisposed() => throw new ObjectDisposedException(nameof(MappedStateFile));

    /// <summary>
    /// After the owner's stores: asks the flusher to msync the file, and returns the generation that
    /// <see cref="Synced"/> reaches once a sync covers those stores (0 without a flusher: nothing is synced). Two
    /// interlocked operations when a sync is already queued; allocation-free.
    /// </summary>
    public long RequestSync()
    {
        if (_flusher is null)
        {
            return 0;
        }

        var generation = Interlocked.Increment(ref _requested);
        if (Interlocked.Exchange(ref _queued, 1) == 0)
        {
            _flusher.Enqueue(this);
        }

        return generation;
    }

    /// <summary>Completes once <see cref="Synced"/> reaches <paramref name="generation"/> (at once for 0 or one already covered).</summary>
    /// <remarks>Never throws; the task fails with the exception.</remarks>
    /// <exception cref="BrokerException"><see cref="BrokerErrorCode.StorageError"/>: the msync that was to cover it failed
    /// (the flusher's, or the one <see cref="Dispose"/> makes, also for a wait begun after either);
    /// <see cref="BrokerErrorCode.Closed"/>, naming the file: the file was closed before a sync covered it (the generation
    /// was requested after the close's msync, or while it ran), also for a wait begun after the close.</exception>
    public Task WaitForSyncAsync(long generation)
    {
        if (Volatile.Read(ref _synced) >= generation)
        {
            return Task.CompletedTask;
        }

        var done = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        lock (_waitLock)
        {
            if (Volatile.Read(ref _synced) >= generation)
            {
                return Task.CompletedTask;
            }

            if (generation <= _failedThrough)
            {
                // Its sync failed before this waiter came (the flusher's, or the close's last one), and nothing syncs
                // the file again until the next request: the failure is this waiter's outcome, as it was the others'.
                return Task.FromException(_failure!);
            }

            if (Volatile.Read(ref _disposed))
            {
                // Requested after the close's msync (an update stored before a close that ran between the store and the
                // request): nothing syncs the file any more.
                return Task.FromException(ClosedBeforeSynced());
            }

            _waiters.Add((generation, done));
        }

        return done.Task;
    }

    /// <summary>Flusher, when <see cref="Sync"/> could not even run: fails the waiters not yet covered; the next request queues the file again.</summary>
    internal void FailSync(Exception e)
    {
        Volatile.Write(ref _queued, 0);
        var failure = new BrokerException(BrokerErrorCode.StorageError, $"msync of '{Path}' failed: {e.Message}");
        KeepFailure(Volatile.Read(ref _requested), failure);
        CompleteWaiters(failure);
    }

    /// <summary>
    /// A failed msync was to cover the generations up to <paramref name="covered"/>: a waiter for one of them that comes
    /// after the failure (its <see cref="RequestSync"/> returned before the flusher ran, its wait began after) is failed
    /// at once, as the waiters already there are, instead of waiting for a sync nobody queues. A later sync that
    /// succeeds covers them again (<see cref="Synced"/> is checked first).
    /// </summary>
    private void KeepFailure(long covered, Exception failure)
    {
        lock (_waitLock)
        {
            if (covered > _failedThrough)
            {
                _failedThrough = covered;
            }

            _failure = failure;
        }
    }

    /// <summary>
    /// Unmaps the file; updates whose sync was requested and not yet done are msynced first. When that msync fails, its
    /// waiters, and a wait for one of those updates begun after the close, fail with its
    /// <see cref="BrokerErrorCode.StorageError"/>; a waiter for an update the close did not have to sync (its sync
    /// requested after the close's msync), also one that begins after the close, fails with
    /// <see cref="BrokerErrorCode.Closed"/> naming the file.
    /// </summary>
    public void Dispose() => Close(superseded: false);

    /// <summary>
    /// <see cref="Dispose"/> for a file whose bytes <see cref="CopyToPath"/> wrote whole into the file now at its path
    /// (flushed to disk before it got its name, with no store into this one since): what was waiting to be synced is
    /// msynced first as <see cref="Dispose"/> does, but a failure of that msync cannot lose an update any more (the new
    /// file holds them all), so its waiters complete and the failure is returned for the caller to log; null when it
    /// succeeded or had nothing to do.
    /// </summary>
    public BrokerException? CloseSuperseded() => Close(superseded: true);

    private BrokerException? Close(bool superseded)
    {
        long covered;
        bool due;
        lock (_syncLock)
        {
            if (_closing)
            {
                return null;
            }

            _closing = true; // no msync of the flusher's starts from now on: this one covers what it would have
            covered = Volatile.Read(ref _requested);
            due = covered > Volatile.Read(ref _synced);
            BeginMsync(); // one of the flusher's may still be in flight: the file is unmapped once it ends too
        }

        BrokerException? failure = null;
        try
        {
            if (due)
            {
                _flusher?.CloseSyncFault?.Invoke(this);
                _view.Flush();
            }
        }
        catch (Exception e)
        {
            failure = new BrokerException(BrokerErrorCode.StorageError, $"msync of '{Path}' failed: {e.Message}");
        }
        finally
        {
            lock (_syncLock)
            {
                if (due && (failure is null || superseded))
                {
                    // Synced; or superseded, its updates on disk in the file that superseded it.
                    if (covered > Volatile.Read(ref _synced))
                    {
                        Volatile.Write(ref _synced, covered);
                    }
                }
                else if (failure is not null)
                {
                    KeepFailure(covered, failure); // a waiter that comes after the close is failed with it too
                }

                Volatile.Write(ref _disposed, true); // after _synced: a wait that sees the close sees what it synced
                _inFlight--;
                UnmapIfDone(); // or the last of the flusher's msyncs still in flight does, when it ends
            }
        }

        // Those it covered complete; any other (its sync requested while the close ran) fails.
        CompleteWaiters(failure is not null && !superseded ? failure : ClosedBeforeSynced());
        return failure;
    }

    /// <summary>What a wait for a sync the close did not cover fails with: <see cref="BrokerErrorCode.Closed"/>, naming the file.</summary>
    private BrokerException ClosedBeforeSynced() => new(
        BrokerErrorCode.Closed,
        $"state file '{Path}' was closed (its subscription or group closed, or the broker) before an msync covered this update: it is not confirmed on disk");

    /// <summary>Completes the waiters <see cref="Synced"/> covers, and fails the others with <paramref name="failure"/> if given.</summary>
    private void CompleteWaiters(Exception? failure)
    {
        List<(long Generation, TaskCompletionSource Done)>? due = null;
        lock (_waitLock)
        {
            var covered = Volatile.Read(ref _synced);
            for (var i = _waiters.Count - 1; i >= 0; i--)
            {
                if (failure is not null || _waiters[i].Generation <= covered)
                {
                    (due ??= []).Add(_waiters[i]);
                    _waiters[i] = _waiters[^1];
                    _waiters.RemoveAt(_waiters.Count - 1);
                }
            }
        }

        if (due is null)
        {
            return;
        }

        var synced = Volatile.Read(ref _synced);
        foreach (var (generation, done) in due)
        {
            if (generation <= synced)
            {
                done.TrySetResult();
            }
            else
            {
                done.TrySetException(failure!);
            }
        }
    }
}
