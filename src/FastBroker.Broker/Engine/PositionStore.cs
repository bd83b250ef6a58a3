using System.Text;
using FastBroker.Storage;

namespace FastBroker.Engine;

/// <summary>
/// Committed positions of one durable subscription, per topic (a pattern subscription spans several topics).
/// A memory-mapped table: a commit is one aligned 8-byte store (survives <c>kill -9</c> without a syscall); adding
/// a topic writes its name first and publishes the entry by storing its position last. Opened with a
/// <see cref="StateFileFlusher"/>, <see cref="RequestSync"/> (after a commit to an <c>Fsynced</c> topic) has it msynced in
/// the background.
/// </summary>
/// <remarks>Layout: slot 0 magic, slot 1 entry count; then entries of 264 bytes: u8 name length, name (UTF-8,
/// ≤ 255 bytes, zero-padded to 256), i64 position + 1 (0 = entry not yet published).</remarks>
internal sealed class PositionStore : IDisposable
{
    /// <summary>Topics one durable subscription can span.</summary>
    public const int MaxTopics = 1024;

    internal const long Magic = 0x534F_5052_4246_4246; // "FBFRPROS"
    internal const int HeaderBytes = 16;
    internal const int EntryBytes = 264;

    private readonly object _gate = new();
    private readonly Dictionary<string, int> _index = new(StringComparer.Ordinal);
    private MappedStateFile _file; // under _gate; replaced only by RewriteIfRemoved
    private long _generationBase; // under _gate: the sync generations of the files this store held before _file
    private bool _disposed; // under _gate

    private PositionStore(MappedStateFile file)
    {
        _file = file;
        var count = (int)_file.Read(1); // 0 to MaxTopics: Open refused any other
        for (var i = 0; i < count; i++)
        {
            var entry = HeaderBytes + ((long)i * EntryBytes);
            var len = _file.Bytes(entry, 1)[0];
            if (len == 0 || _file.Read((entry + 256) / 8) == 0)
            {
                continue;
            }

            _index[Encoding.UTF8.GetString(_file.Bytes(entry + 1, len))] = i;
        }
    }

    /// <summary>
    /// True when the file existed but held no state (<see cref="StateFileContents.NoState"/>: empty, no magic, or cut
    /// short before its positions end): its committed positions were lost (a power loss before the file's data reached
    /// the disk, say; a creation that was interrupted leaves no such file: a new file gets its name only once its header
    /// is written, <see cref="MappedStateFile.Open"/>). It opens with no position (what
    /// survived of a cut file is dropped: nothing says which positions are missing); the caller must not take that as a
    /// new subscription's (whose fallback, <see cref="StartKind.Latest"/> say, would skip every message it had not
    /// committed).
    /// </summary>
    public bool WasBlank { get; private init; }

    /// <summary>The length in bytes of a position file.</summary>
    public static long FileLength => HeaderBytes + ((long)MaxTopics * EntryBytes);

    /// <summary>Opens or creates the position file at <paramref name="path"/>; <paramref name="flusher"/>: who syncs it (null: never synced).</summary>
    /// <remarks>A file shorter than <see cref="FileLength"/> whose entries are all whole (its entry count and each
    /// entry it counts lie inside it) loses nothing by being padded with zeros to its full size, which the mapping does:
    /// <see cref="PaddedFrom"/> then says so, for the caller to report.</remarks>
    /// <exception cref="InvalidDataException">The file is not a position file (<see cref="StateFileContents.Damaged"/>,
    /// with <see cref="Inspect"/>'s reason, which covers a file longer than one): refused before it is mapped, so it is
    /// left exactly as it was (a short one is not padded).</exception>
    public static PositionStore Open(string path, StateFileFlusher? flusher = null)
    {
        // Checked before mapping: the mapping pads a short file with zeros, which would change a file it then refuses,
        // and make one cut short inside its entries look whole.
        var header = Inspect(path);
        if (header.Contents == StateFileContents.Damaged)
        {
            throw new InvalidDataException($"{path} is not a FastBroker position file ({header.Reason})");
        }

        // A new file gets its name with its header (magic, no entry): no reader finds it without one.
        var file = MappedStateFile.Open(path, FileLength, flusher, [Magic, 0]);
        var blank = !file.Created && (header.Contents == StateFileContents.NoState || file.Read(0) == 0);
        if (blank)
        {
            file.Write(1, 0);
            file.Write(0, Magic);
        }
        else if (file.Read(0) != Magic || file.Read(1) is < 0 or > MaxTopics)
        {
            // Replaced between the check and the mapping.
            file.Dispose();
            throw new InvalidDataException($"{path} is not a FastBroker position file ({Inspect(path).Reason})");
        }

        var padded = !file.Created && header.Contents == StateFileContents.State && header.Length < FileLength ? header.Length : 0;
        return new PositionStore(file) { WasBlank = blank, PaddedFrom = padded };
    }

    /// <summary>
    /// The length in bytes of the file before <see cref="Open"/> padded it with zeros to <see cref="FileLength"/>, when
    /// it held state and was shorter, every entry it counts whole (a file of an older, smaller layout, or cut short past
    /// its last entry: nothing was lost); 0 when it was not padded (or was created, or held no state:
    /// <see cref="WasBlank"/>).
    /// </summary>
    public long PaddedFrom { get; private init; }

    /// <summary>The log line that says <see cref="PaddedFrom"/> happened to the file at <paramref name="path"/>; null when it did not.</summary>
    public string? DescribePadding(string path) => PaddedFrom == 0
        ? null
        : $"position file {path} was {PaddedFrom} bytes, shorter than a position file, with its {All().Count} committed position(s) whole: padded with zeros from {PaddedFrom} to {FileLength} bytes (nothing lost)";

    /// <summary>
    /// <see cref="Open"/> for the durable subscription <paramref name="name"/>: a file that is not a position file is
    /// refused (left as it is) with an error that names it, says why and what to do.
    /// </summary>
    /// <exception cref="BrokerException"><see cref="BrokerErrorCode.StorageError"/>: the file is not a position file, or
    /// cannot be opened as it is; <see cref="BrokerErrorCode.ResourceExhausted"/>: it cannot be opened now for want of a
    /// resource (<see cref="ResourceShortage"/>).</exception>
    public static PositionStore OpenDurable(string path, string name, StartPosition start, StateFileFlusher? flusher)
    {
        try
        {
            return Open(path, flusher);
        }
        catch (InvalidDataException e)
        {
            // Nothing in it says what the subscription committed: neither its positions nor its start may be guessed.
            var fallback = start.Kind == StartKind.Committed ? ", which then finds nothing committed and takes its fallback" : "";
            throw new BrokerException(BrokerErrorCode.StorageError, $"durable subscription '{name}': {e.Message}: nothing in it says what the subscription committed, so it is not opened; repair the file, or remove it to start the subscription anew from its start position ({start.Kind}{fallback})", e);
        }
        catch (Exception e) when (ResourceShortage.Describe(e) is { } shortage)
        {
            // The system could not do it now: the file is as it was, and the same subscribe may succeed later.
            throw new BrokerException(BrokerErrorCode.ResourceExhausted, $"durable subscription '{name}': its position file {path} cannot be opened now ({shortage}: {e.Message}); nothing was changed, try again later", e);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new BrokerException(BrokerErrorCode.StorageError, $"durable subscription '{name}': its position file {path} cannot be opened: {e.Message}", e);
        }
    }

    /// <summary>
    /// What the file at <paramref name="path"/> holds, read without mapping or changing it (<see cref="StateFileHeader"/>;
    /// slot 1 is the entry count). An entry count no position file holds (negative, or above <see cref="MaxTopics"/>)
    /// is damage, as a wrong magic is: <see cref="StateFileContents.Damaged"/>; so is a file longer than
    /// <see cref="FileLength"/> (damaged, or of another version's layout). A file whose magic survived but that is
    /// cut short before its entry count, or before the end of its last entry (its position) by a count a position file
    /// can hold, holds no state, as an empty one: a position it had committed is lost.
    /// </summary>
    public static StateFileHeader Inspect(string path)
    {
        var header = StateFileHeader.Read(path, Magic, HeaderBytes / 8, "position file", "entry count");
        if (header.Contents != StateFileContents.State)
        {
            return header;
        }

        if (header.Length > FileLength)
        {
            // Mapped, it would be refused (never cut: what lies past the full size is not ours to drop) with a reason
            // that does not say what the file is; it is damage or a file of another layout, as a wrong magic is.
            return header with { Contents = StateFileContents.Damaged, Reason = $"{header.Length} bytes, longer than a position file's {FileLength}: damaged, or not written by this version of FastBroker" };
        }

        var count = header.Slot(1);
        if (count is < 0 or > MaxTopics)
        {
            return header with { Contents = StateFileContents.Damaged, Reason = $"entry count {count} (a position file holds 0 to {MaxTopics} entries)" };
        }

        var end = HeaderBytes + (count * EntryBytes);
        return header.Length < end
            ? header with { Contents = StateFileContents.NoState, Reason = $"{header.Length} bytes: a position file cut short before the end of its {count} committed position(s), at byte {end}" }
            : header;
    }

    /// <summary>The committed next offset to read for <paramref name="topic"/>, or null when never committed.</summary>
    public long? Get(string topic)
    {
        lock (_gate)
        {
            if (!_index.TryGetValue(topic, out var i))
            {
                return null;
            }

            return _file.Read(SlotOf(i)) - 1;
        }
    }

    /// <summary>Every topic with a committed position.</summary>
    public IReadOnlyDictionary<string, long> All()
    {
        lock (_gate)
        {
            var result = new Dictionary<string, long>(StringComparer.Ordinal);
            foreach (var (topic, i) in _index)
            {
                result[topic] = _file.Read(SlotOf(i)) - 1;
            }

            return result;
        }
    }

    /// <summary>Commits <paramref name="nextOffset"/> (the first offset not yet processed) for <paramref name="topic"/>.</summary>
    public void Commit(string topic, long nextOffset)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(nextOffset);
        lock (_gate)
        {
            if (_index.TryGetValue(topic, out var i))
            {
                _file.Write(SlotOf(i), nextOffset + 1);
                return;
            }

            var count = (int)_file.Read(1);
            if (count >= MaxTopics)
            {
                throw new BrokerException(BrokerErrorCode.InvalidArgument, $"a durable subscription can span at most {MaxTopics} topics");
            }

            var entry = HeaderBytes + ((long)count * EntryBytes);
            var name = _file.Bytes(entry, 257);
            var written = Encoding.UTF8.GetBytes(topic, name[1..]);
            name[0] = (byte)written;
            _file.Write(1, count + 1);
            _file.Write(SlotOf(count), nextOffset + 1);
            _index[topic] = count;
        }
    }

    /// <summary>msync now, on this thread: only needed against OS crashes.</summary>
    public void Flush()
    {
        lock (_gate)
        {
            _file.Flush();
        }
    }

    /// <summary>
    /// After a commit: has the flusher msync the file (no-op without one); returns the generation that covers it (0
    /// without a flusher). Generations go on rising across <see cref="RewriteIfRemoved()"/>: one requested of a file this
    /// store no longer holds is covered at once (its commits are in the file written at the path, flushed when written).
    /// </summary>
    public long RequestSync()
    {
        lock (_gate)
        {
            var generation = _file.RequestSync();
            return generation == 0 ? 0 : _generationBase + generation;
        }
    }

    /// <summary>Completes once a sync covers <paramref name="generation"/> (<see cref="MappedStateFile.WaitForSyncAsync"/>).</summary>
    public Task WaitForSyncAsync(long generation)
    {
        lock (_gate)
        {
            // A generation of a file this store held before: its Dispose msynced it, and the file written at the path
            // holds its commits, flushed before it got its name.
            return generation <= _generationBase ? Task.CompletedTask : _file.WaitForSyncAsync(generation - _generationBase);
        }
    }

    /// <summary>The sync generation requested last (0: never).</summary>
    public long SyncRequested
    {
        get
        {
            lock (_gate)
            {
                return _file.SyncRequested == 0 ? _generationBase : _generationBase + _file.SyncRequested;
            }
        }
    }

    /// <summary>The sync generation the last msync covers.</summary>
    public long Synced
    {
        get
        {
            lock (_gate)
            {
                return _generationBase + _file.Synced;
            }
        }
    }

    /// <summary>The position file's path.</summary>
    public string Path => _file.Path;

    /// <summary>True when the file was removed while this store held it (<see cref="MappedStateFile.WasRemoved()"/>).</summary>
    public bool WasRemoved()
    {
        lock (_gate)
        {
            return _file.WasRemoved();
        }
    }

    /// <summary>
    /// When the file was removed (or renamed away) while this store held it (<see cref="MappedStateFile.WasRemoved()"/>, one syscall):
    /// writes the positions it holds as a new file at its path (<see cref="MappedStateFile.CopyToPath"/>) and goes on in
    /// it; the removed file is closed (msynced first if a sync was pending; its waiters complete even if that fails, the
    /// new file holding their commits). Under this store's
    /// lock, as every commit is: no commit falls between the copy and the swap, and a sync requested of the removed file
    /// is covered (<see cref="WaitForSyncAsync"/>).
    /// </summary>
    /// <exception cref="IOException">The new file could not be written; this store goes on in the removed one.</exception>
    public PositionFileCheck RewriteIfRemoved() => RewriteIfRemoved(out _, out _);

    /// <summary>
    /// <see cref="RewriteIfRemoved()"/>; <paramref name="renamedTo"/>: where the file was renamed to, when it was renamed
    /// away rather than unlinked (<see cref="MappedStateFile.RenamedTo"/>; left as it is);
    /// <paramref name="removedSyncFailure"/>: the removed file's last msync, made as it is closed, failed (for the
    /// caller to log: it loses nothing, the file written at the path holds every commit, and a sync waited for
    /// completes, <see cref="MappedStateFile.CloseSuperseded"/>).
    /// </summary>
    public PositionFileCheck RewriteIfRemoved(out string? renamedTo, out BrokerException? removedSyncFailure)
    {
        lock (_gate)
        {
            renamedTo = null;
            removedSyncFailure = null;
            if (_disposed || !_file.WasRemoved())
            {
                return PositionFileCheck.AtItsPath;
            }

            renamedTo = _file.RenamedTo;

            if (_file.CopyToPath() is not { } copy)
            {
                return File.Exists(_file.Path) ? PositionFileCheck.AnotherFileAtItsPath : PositionFileCheck.DirectoryGone;
            }

            var removed = _file;
            _generationBase += removed.SyncRequested;
            _file = copy;
            removedSyncFailure = removed.CloseSuperseded();
            return PositionFileCheck.WrittenAgain;
        }
    }

    /// <summary>Unmaps the file once no call is using it; every call after it throws <see cref="ObjectDisposedException"/>.</summary>
    public void Dispose()
    {
        lock (_gate)
        {
            _disposed = true;
            _file.Dispose();
        }
    }

    private static long SlotOf(int entryIndex) => (HeaderBytes + ((long)entryIndex * EntryBytes) + 256) / 8;
}

/// <summary>What <see cref="PositionStore.RewriteIfRemoved()"/> found.</summary>
internal enum PositionFileCheck
{
    /// <summary>The file is at its path (or the store is closed): nothing done.</summary>
    AtItsPath,

    /// <summary>It was removed, and is written again at its path with the store's positions; the store goes on in it.</summary>
    WrittenAgain,

    /// <summary>It was removed, and another file is at its path now: left as it is; the store goes on in the removed file.</summary>
    AnotherFileAtItsPath,

    /// <summary>It was removed with the data directory: nothing is written; the store goes on in the removed file.</summary>
    DirectoryGone,
}
