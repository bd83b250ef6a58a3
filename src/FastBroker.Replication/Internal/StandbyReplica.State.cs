using System.Buffers.Binary;
using System.Net.Sockets;
using FastBroker.Engine;
using FastBroker.Journal;

namespace FastBroker.Replication.Internal;

/// <summary>
/// The standby's copies of the broker's state files (<see cref="StateFiles"/>): STATE and POSITIONS frames. What the
/// frames of one wake-up of the receive thread wrote is handed to the durable thread, which syncs it (each directory
/// a file was renamed into, each mapping stored into and not yet msynced) once for them all, and only then sends the
/// STATE_ACK of the newest version among them: the acknowledgement says the state is on this node's disk.
/// </summary>
internal sealed partial class StandbyReplica
{
    private readonly object _stateBatchLock = new();

    // A primary that keeps sending what damages a copy, or a disk that keeps damaging them, must not flood the log: a
    // copy damaged, or replaced for its length, goes through one limit; a blank copy through its own, and a short copy
    // padded with zeros through a third, so that a stream of one kind neither hides the first line of another nor
    // counts its lines as "more like it" (a copy padded follows the primary's short file sent whole, whose replacement
    // of a longer copy is itself a damage line).
    private LogRateLimit? _damageLogLimit;
    private LogRateLimit? _blankLogLimit;
    private LogRateLimit? _paddedLogLimit;
    private readonly StateBatch _stateWritten = new(); // receive thread: what this wake-up's frames wrote
    private StateBatch _stateReady = new(); // under _stateBatchLock: handed to the durable thread
    private StateBatch _stateSyncing = new(); // durable thread
    private readonly FrameBuffer _stateAckFrame = new(64);
    private readonly Dictionary<string, PositionStore> _positionStores = new(StringComparer.Ordinal);
    private readonly Dictionary<string, MappedStateFile> _groupStates = new(StringComparer.Ordinal);
    private readonly StateFileFlusher _stateFlusher = new(); // msyncs the state files in the background, as the journals are

    /// <summary>
    /// Tests: each step taken with a state file, in order, as (step, what): <c>write</c> (a whole file's bytes written to
    /// its temporary file), <c>fsync</c> (that file synced), <c>rename</c> (renamed over the copy), <c>fsync-dir</c>
    /// (the directory synced, relative to the data directory), <c>store</c> (stored into the mapping of a copy),
    /// <c>msync</c> (that mapping synced), <c>remove</c> (a copy removed: the primary no longer has the file), <c>positions</c> (a POSITIONS frame applied, its version), <c>handoff</c>
    /// (what the receive thread wrote so far handed to the durable thread), <c>batch</c> (the durable thread took what
    /// was handed off, its newest version), <c>ack</c> (the STATE_ACK of that version about to be sent), <c>hold</c> (a <c>producers.state</c> held in memory, its
    /// capture points beyond this node's copies), <c>withheld</c> (at the end of a wake-up: the newest version received,
    /// which no STATE_ACK covers while such a file is held). Called on the
    /// thread that takes the step (<c>handoff</c> and <c>batch</c> under the lock between them, so in order).
    /// </summary>
    internal Action<string, string>? StateTrace { get; set; }

    /// <summary>Tests: the flusher that msyncs this node's copies of the state files in the background.</summary>
    internal StateFileFlusher StateFlusher => _stateFlusher;

    /// <summary>
    /// A state file sent whole: a group's state is stored into this node's copy (<see cref="ApplyGroupState"/>); any
    /// other replaces this node's copy (written to a temporary file, fsynced, renamed over it). A copy of a position file
    /// whose length was not the primary's file's is logged with both lengths (through the same
    /// <see cref="T:FastBroker.Engine.LogRateLimit"/> as a damaged copy).
    /// </summary>
    private void OnState(ReadOnlySpan<byte> body)
    {
        var r = new FrameReader(body);
        var relative = r.Str();
        var bytes = r.Take((int)r.U32());
        if (!StateFiles.IsStatePath(relative))
        {
            throw new InvalidDataException($"state file path '{relative}' refused");
        }

        _unreportedCopies?.Remove(relative); // the primary has it: this is its file
        var path = Path.Combine(_options.DataDirectory, relative);
        if (StateFiles.IsGroupStatePath(relative))
        {
            ApplyGroupState(relative, path, bytes);
            return;
        }

        if (relative == ProducerCheckpoint.FileName)
        {
            OnProducerCheckpoint(relative, path, bytes);
            return;
        }

        // The file is replaced (a new inode): an open mapping of the old one must not take later updates.
        if (_positionStores.Remove(relative, out var open))
        {
            open.Dispose();
        }

        var replacedLength = StateFiles.SubscriptionOf(relative) is not null ? LengthOf(path) : null;
        // Its data is fsynced before the rename, the directory after it (once per wake-up, by the durable thread).
        var directory = Path.GetDirectoryName(relative) ?? "";
        if (!Directory.Exists(Path.Combine(_options.DataDirectory, directory)))
        {
            _stateWritten.Directories.Add(Path.GetDirectoryName(directory) ?? ""); // the new directory's entry too
        }

        StateFiles.WriteAtomically(path, bytes, StateTrace is { } trace ? step => trace(step, relative) : null);
        _stateWritten.Directories.Add(directory);
        if (replacedLength is { } length && length != bytes.Length)
        {
            DamageLog.Write(_options.Log, $"replication: position file {relative} was {length} bytes, the primary's {bytes.Length}: replaced by the primary's file whole");
        }
    }

    /// <summary>
    /// A work-queue group's state (sent whole, up to every 20 ms while it changes): stored into this node's mapping of
    /// its copy, only the 8-byte slots that changed, from the last slot to the first (done marks before the floor, the
    /// magic last, as the group itself orders its stores), and msynced in the background by the state flusher, or by
    /// the durable thread before the next STATE_ACK if the flusher has not yet: no sync on this thread, and after a
    /// power loss the copy is the old state, the new one, or one between them. That holds only for a copy that is a
    /// group's state, so the copy is checked first (<see cref="DamageOfGroupCopy"/>): a damaged one is logged, removed
    /// and created afresh (its new entry in the directory synced before the next STATE_ACK), and the frame's bytes, the
    /// primary's file whole, are stored into the new copy; the link goes on. A copy of another length than the primary's
    /// file is replaced by a new one in the same way, with a line that names it and both lengths; both lines go through
    /// one <see cref="T:FastBroker.Engine.LogRateLimit"/> (the first at once, then at most one per 10 s, which counts those not logged).
    /// </summary>
    private void ApplyGroupState(string relative, string path, ReadOnlySpan<byte> bytes)
    {
        if (bytes.Length == 0 || bytes.Length % 8 != 0)
        {
            throw new InvalidDataException($"group state '{relative}' from the primary is {bytes.Length} bytes, not a whole number of slots");
        }

        _groupStates.TryGetValue(relative, out var file);
        var damage = DamageOfGroupCopy(path, file, bytes.Length);
        if (file is null || file.Length != bytes.Length || damage is not null)
        {
            if (file is not null)
            {
                file.Dispose();
                _groupStates.Remove(relative);
            }

            if (damage is not null)
            {
                File.Delete(path);
                _stateWritten.Directories.Add(Path.GetDirectoryName(relative)!); // its new entry, synced before the STATE_ACK
                DamageLog.Write(_options.Log, $"replication: group state {relative} is damaged ({damage}): replaced by a new copy holding the primary's file whole, from the frame that found it");
            }
            else if (LengthOf(path) is { } length && length != bytes.Length)
            {
                File.Delete(path); // another window size: the primary's file replaces it whole
                _stateWritten.Directories.Add(Path.GetDirectoryName(relative)!); // its new entry, synced before the STATE_ACK
                DamageLog.Write(_options.Log, $"replication: group state {relative} was {length} bytes, the primary's {bytes.Length}: replaced by a new copy holding the primary's file whole");
            }

            file = MappedStateFile.Open(path, bytes.Length, _stateFlusher);
            _groupStates[relative] = file;
        }

        for (var slot = (bytes.Length / 8) - 1; slot >= 0; slot--)
        {
            var value = BinaryPrimitives.ReadInt64LittleEndian(bytes[(slot * 8)..]);
            if (file.Read(slot) != value)
            {
                file.Write(slot, value);
            }
        }

        StateTrace?.Invoke("store", relative);
        file.RequestSync();
        _stateWritten.Groups[relative] = file;
    }

    /// <summary>The length of the file at <paramref name="path"/>; null when there is none.</summary>
    private static long? LengthOf(string path)
    {
        var info = new FileInfo(path);
        return info.Exists ? info.Length : null;
    }

    /// <summary>
    /// Why this node's copy of a group's state is not one, or null: a wrong magic in the mapping <paramref name="open"/>
    /// (written over in place while the link was up), or, without a mapping of that length, what
    /// <see cref="GroupAckStore.Inspect"/> finds in the file (a wrong magic, unreadable). A copy that holds no state
    /// (zeros, empty, missing) is not damaged: the frame's bytes fill it. A copy of another length than the primary's (an
    /// older window size, or a file put there) is not reported as damaged: <see cref="ApplyGroupState"/> replaces it
    /// whole and logs a line naming it and both lengths (rate-limited as damage is).
    /// </summary>
    private static string? DamageOfGroupCopy(string path, MappedStateFile? open, int length)
    {
        if (open is not null && open.Length == length)
        {
            var magic = open.Read(0);
            return magic == 0 || magic == GroupAckStore.Magic ? null : $"magic 0x{magic:X16}, not a group state file's 0x{GroupAckStore.Magic:X16}";
        }

        if (!File.Exists(path) || new FileInfo(path).Length != length)
        {
            return null;
        }

        var header = GroupAckStore.Inspect(path, (length / 8) - GroupAckStore.HeaderSlots);
        return header.Contents == StateFileContents.Damaged ? header.Reason : null;
    }

    /// <summary>
    /// Committed positions: applied to this node's own position files (a mapped 8-byte store each, as on the
    /// primary), then acknowledged by version once they and every state file written before them are synced (by the
    /// durable thread, after this wake-up), which is what releases the primary's answer to the COMMIT.
    /// </summary>
    private void OnPositions(ReadOnlySpan<byte> body)
    {
        // Read and checked whole before any is applied: a frame that ends the link applies none of its updates.
        var r = new FrameReader(body);
        var version = r.I64();
        var n = r.U32();
        var updates = new List<(string Subscription, string Topic, long Next)>((int)Math.Min(n, 1024));
        for (var i = 0; i < n; i++)
        {
            var subscription = r.Str();
            var topic = r.Str();
            var next = r.I64();
            if (!TopicName.IsValid(subscription) || !TopicName.IsValid(topic) || next < 0)
            {
                throw new InvalidDataException($"invalid position update '{subscription}' / '{topic}' / {next} from the primary");
            }

            updates.Add((subscription, topic, next));
        }

        foreach (var (subscription, topic, next) in updates)
        {
            var relative = "subscriptions/" + subscription + ".pos";
            if (!_positionStores.TryGetValue(relative, out var store))
            {
                store = OpenPositionCopy(relative);
                _positionStores[relative] = store;
            }

            store.Commit(topic, next);
            StateTrace?.Invoke("store", relative);
            store.RequestSync(); // msynced in the background, or before the acknowledgement if not yet
            _stateWritten.Positions[relative] = store;
        }

        StateTrace?.Invoke("positions", version.ToString(System.Globalization.CultureInfo.InvariantCulture));
        _positionsVersion = Math.Max(_positionsVersion, version); // acknowledged from HandOffState: AckableVersion
        AskForUnreportedCopies(); // the first POSITIONS frame after the WELCOME ends the attach's snapshot
    }

    private LogRateLimit DamageLog => _damageLogLimit ??= new LogRateLimit(LogRateLimit.DefaultInterval, _options.LogClock);

    private LogRateLimit BlankLog => _blankLogLimit ??= new LogRateLimit(LogRateLimit.DefaultInterval, _options.LogClock);

    private LogRateLimit PaddedLog => _paddedLogLimit ??= new LogRateLimit(LogRateLimit.DefaultInterval, _options.LogClock);

    /// <summary>
    /// Opens this node's copy of a position file for a POSITIONS update. A copy that holds no state (lost to a power
    /// loss, or sent so by the primary) is logged, at most one line per 10 s with a count of those not logged (a
    /// <see cref="T:FastBroker.Engine.LogRateLimit"/> of its own): it holds only the positions committed from now on until the primary sends
    /// the file whole (at the next attach, or the next time the primary checks its state files: the link has not sent it
    /// whole). A damaged copy (not a position file: a wrong magic, an entry count
    /// its length cannot hold, unreadable) is logged (the first at once, then at most one line per 10 s, which counts
    /// those not logged: <see cref="T:FastBroker.Engine.LogRateLimit"/>), removed and created afresh, and the standby asks the primary for
    /// the file whole (<see cref="FrameKind.StateWanted"/>), which replaces it: the link goes on. A short copy whose
    /// entries are all whole is padded with zeros to its full size (<see cref="PositionStore.PaddedFrom"/>: nothing is
    /// lost) and logged through a <see cref="T:FastBroker.Engine.LogRateLimit"/> of its own, as a blank copy is.
    /// </summary>
    private PositionStore OpenPositionCopy(string relative)
    {
        var path = Path.Combine(_options.DataDirectory, relative);
        PositionStore store;
        try
        {
            store = PositionStore.Open(path, _stateFlusher);
        }
        catch (InvalidDataException)
        {
            var reason = PositionStore.Inspect(path).Reason;
            File.Delete(path);
            store = PositionStore.Open(path, _stateFlusher);
            _stateWritten.Directories.Add("subscriptions"); // its new entry, synced before the STATE_ACK
            DamageLog.Write(_options.Log, $"replication: position file {relative} is damaged ({reason}): replaced by a new copy, which holds only the positions committed from now on until the primary's file, asked for whole, replaces it");
            AskForStateFile(relative);
            return store;
        }

        if (store.WasBlank)
        {
            // Only the positions the primary sends from now on are in it; the file sent whole at the next attach (or
            // at the primary's next check of its state files: this link has not sent it whole) replaces it.
            BlankLog.Write(_options.Log, $"replication: position file {relative} held no state (lost to a power loss?): it holds only the positions committed from now on until the primary sends it whole");
        }

        if (store.DescribePadding(relative) is { } padded)
        {
            PaddedLog.Write(_options.Log, $"replication: {padded}");
        }

        return store;
    }

    /// <summary>Receive thread: asks the primary to send the state file <paramref name="relative"/> whole on this link.</summary>
    private void AskForStateFile(string relative)
    {
        if (Volatile.Read(ref _socket) is not { } link)
        {
            return;
        }

        lock (_sendLock)
        {
            var f = _stateAckFrame;
            f.Begin(FrameKind.StateWanted).Str(relative).End();
            f.SendTo(link); // SendTo empties f even if it fails; a broken link ends the receive loop
        }
    }

    /// <summary>Receive thread, at the end of a wake-up: hands what its frames wrote to the durable thread to sync and acknowledge.</summary>
    private void HandOffState(Socket socket)
    {
        InstallReachedCheckpoint();
        AddAckableVersion();
        if (_stateWritten.IsEmpty)
        {
            return;
        }

        _stateWritten.Link = socket;
        lock (_stateBatchLock)
        {
            _stateWritten.MoveTo(_stateReady);
            StateTrace?.Invoke("handoff", "");
        }

        _durableWake.Set();
    }

    /// <summary>
    /// Durable thread: syncs what the receive thread handed over (one fsync per directory, one msync per mapping not yet
    /// msynced by the flusher, for every frame of the wake-ups since the last call), then sends the STATE_ACK of the
    /// newest version among them. A failed sync sends none and ends the link: the standby attaches again and receives
    /// whole every state file whose copy it does not report, synced, as the primary's (<see cref="SendStateDigests"/>).
    /// </summary>
    private void SyncStateAndAck()
    {
        StateBatch batch;
        lock (_stateBatchLock)
        {
            if (_stateReady.IsEmpty)
            {
                return;
            }

            (_stateReady, _stateSyncing) = (_stateSyncing, _stateReady);
            batch = _stateSyncing;
            StateTrace?.Invoke("batch", batch.Version.ToString(System.Globalization.CultureInfo.InvariantCulture)); // every hand-off traced before this is in it
        }

        try
        {
            foreach (var directory in batch.Directories)
            {
                DurableFile.SyncDirectory(Path.Combine(_options.DataDirectory, directory));
                StateTrace?.Invoke("fsync-dir", directory);
            }

            foreach (var (relative, store) in batch.Positions)
            {
                try
                {
                    if (store.Synced < store.SyncRequested)
                    {
                        store.Flush();
                    }
                }
                catch (ObjectDisposedException)
                {
                    // Closed meanwhile (replaced by a whole file, or the link ended): its Dispose msynced it.
                }

                StateTrace?.Invoke("msync", relative);
            }

            foreach (var (relative, file) in batch.Groups)
            {
                try
                {
                    if (file.Synced < file.SyncRequested)
                    {
                        file.Flush();
                    }
                }
                catch (ObjectDisposedException)
                {
                    // Closed meanwhile (another window size, or the link ended): its Dispose msynced it.
                }

                StateTrace?.Invoke("msync", relative);
            }

            if (batch.Version > 0 && batch.Link is { } link)
            {
                StateTrace?.Invoke("ack", batch.Version.ToString(System.Globalization.CultureInfo.InvariantCulture));
                var f = _stateAckFrame;
                lock (_sendLock)
                {
                    f.Begin(FrameKind.StateAck).I64(batch.Version).End();
                    f.SendTo(link); // SendTo empties f even if it fails
                }
            }
        }
        catch (Exception ex) when (ex is JournalException or IOException or BrokerException)
        {
            _options.Log?.Invoke($"replication: syncing the standby's state files failed, not acknowledging them: {ex.Message}; ending the link to the primary");
            batch.Link?.Dispose();
        }
        catch (Exception ex) when (ex is SocketException or ObjectDisposedException)
        {
            // The receive loop notices the broken link.
        }
        finally
        {
            batch.Clear();
        }
    }

    /// <summary>Closes this node's mappings of its state files (each msynced first if a sync was pending).</summary>
    private void ClosePositionStores()
    {
        foreach (var store in _positionStores.Values)
        {
            store.Dispose();
        }

        _positionStores.Clear();
        foreach (var file in _groupStates.Values)
        {
            file.Dispose();
        }

        _groupStates.Clear();
        DropHeldCheckpoints(); // the next attach sends the primary's file again
        ResetStateVersions();
        _stateWritten.Clear();
        lock (_stateBatchLock)
        {
            _stateReady.Clear(); // their acknowledgement would go to the link that ended
        }
    }

    /// <summary>State written by the frames of one or more wake-ups, to be synced before their STATE_ACK.</summary>
    private sealed class StateBatch
    {
        /// <summary>The link whose frames wrote it (where the STATE_ACK goes).</summary>
        public Socket? Link;

        /// <summary>The newest POSITIONS version applied; 0: none (nothing to acknowledge).</summary>
        public long Version;

        /// <summary>Directories (relative to the data directory, "" for itself) a file was renamed or created in.</summary>
        public HashSet<string> Directories { get; } = new(StringComparer.Ordinal);

        /// <summary>Position files stored into, by relative path (the newest mapping of each).</summary>
        public Dictionary<string, PositionStore> Positions { get; } = new(StringComparer.Ordinal);

        /// <summary>Group state copies stored into, by relative path (the newest mapping of each).</summary>
        public Dictionary<string, MappedStateFile> Groups { get; } = new(StringComparer.Ordinal);

        public bool IsEmpty => Version == 0 && Directories.Count == 0 && Positions.Count == 0 && Groups.Count == 0;

        /// <summary>Adds this batch to <paramref name="into"/> (a version of another link is dropped) and empties it.</summary>
        public void MoveTo(StateBatch into)
        {
            if (!ReferenceEquals(into.Link, Link))
            {
                into.Link = Link;
                into.Version = 0;
            }

            into.Version = Math.Max(into.Version, Version);
            into.Directories.UnionWith(Directories);
            foreach (var (relative, store) in Positions)
            {
                into.Positions[relative] = store;
            }

            foreach (var (relative, file) in Groups)
            {
                into.Groups[relative] = file;
            }

            Clear();
        }

        public void Clear()
        {
            Link = null;
            Version = 0;
            Directories.Clear();
            Positions.Clear();
            Groups.Clear();
        }
    }
}
