namespace FastBroker.Engine;

/// <summary>
/// The persisted state of a work-queue group: the ack floor and, for a window of offsets above it, which are done
/// (acked or dead-lettered). Slot <c>o mod W</c> holds <c>o + 1</c> once offset <c>o</c> is done, so a slot never needs
/// clearing when the window moves on (an old value names an old offset and simply does not match), and a crash
/// between marking and advancing the floor cannot make a future offset look done.
/// </summary>
/// <remarks>
/// Layout (little-endian, 8-byte slots): slot 0 magic, slot 1 version, slot 2 ack floor, slots 3..7 reserved,
/// then W slots. Every store is a single aligned 8-byte write into a shared mapping: it survives <c>kill -9</c> with
/// no syscall. Opened with a <see cref="StateFileFlusher"/> (the group of an <c>Fsynced</c> topic), each
/// <see cref="RequestSync"/> has it msynced in the background. The window bounds how far past the floor a group may
/// hand out messages.
/// </remarks>
internal sealed class GroupAckStore : IDisposable
{
    /// <summary>Default window: 2^16 outstanding offsets per group (512 KiB of state).</summary>
    public const int DefaultWindow = 1 << 16;

    /// <summary>The magic in slot 0 of a group state file ("FBFRPACK" read little-endian).</summary>
    public const long Magic = 0x4B43_4150_5246_4246;

    /// <summary>Slots before the window's: magic, version, ack floor, five reserved.</summary>
    public const int HeaderSlots = 8;

    /// <summary>The header slot holding the ack floor.</summary>
    public const int FloorSlot = 2;

    private MappedStateFile _file; // replaced only by Rewrite, which its owner serializes with every other call
    private readonly long _window;

    private GroupAckStore(MappedStateFile file, long window)
    {
        _file = file;
        _window = window;
    }

    /// <summary>How many offsets past the floor can be tracked.</summary>
    public long Window => _window;

    /// <summary>The persisted floor: every offset below it is done.</summary>
    public long Floor => _file.Read(FloorSlot);

    /// <summary>
    /// True when the file existed but held no state (empty, or no magic: its first 8 bytes zero) and was started at the
    /// blank floor given to <see cref="Open"/>: the group's acks were lost (a power loss before the file's data reached
    /// the disk, say). A creation that was interrupted leaves no such file: a new file gets its name only once its header
    /// is written (<see cref="MappedStateFile.Open"/>).
    /// </summary>
    public bool WasBlank { get; private init; }

    /// <summary>
    /// Opens or creates the state file of a group; <paramref name="flusher"/>: who syncs it (null: never synced). A new
    /// file starts at <paramref name="initialFloor"/>; a file that exists but holds no state (<see cref="WasBlank"/>) at
    /// <paramref name="blankFloor"/> (default: <paramref name="initialFloor"/>), since nothing says which of its messages
    /// were acked: the caller passes the oldest offset kept, so they are delivered again rather than skipped.
    /// </summary>
    /// <exception cref="InvalidDataException">The file is not a group's state (<see cref="StateFileContents.Damaged"/>, with
    /// <see cref="Inspect"/>'s reason, which covers a file longer than a group state file of <paramref name="window"/>):
    /// refused before it is mapped, so it is left exactly as it was (a short one is not padded).</exception>
    public static GroupAckStore Open(string path, long initialFloor, int window = DefaultWindow, StateFileFlusher? flusher = null, long? blankFloor = null)
    {
        if (window <= 0 || (window & (window - 1)) != 0)
        {
            throw new ArgumentOutOfRangeException(nameof(window), "window must be a power of two");
        }

        // Checked before mapping: the mapping pads a short file with zeros, which would change a file it then refuses.
        var header = Inspect(path, window);
        if (header.Contents == StateFileContents.Damaged)
        {
            throw new InvalidDataException($"{path} is not a FastBroker group state file ({header.Reason})");
        }

        // A new file gets its name with its header (magic, version, floor): no reader finds it without one.
        var file = MappedStateFile.Open(path, FileLength(window), flusher, [Magic, 1, initialFloor]);
        var blank = !file.Created && (header.Contents == StateFileContents.NoState || file.Read(0) == 0);
        if (blank)
        {
            file.Write(1, 1);
            file.Write(FloorSlot, blankFloor ?? initialFloor);
            file.Write(0, Magic);
        }
        else if (file.Read(0) != Magic)
        {
            // Replaced between the check and the mapping.
            file.Dispose();
            throw new InvalidDataException($"{path} is not a FastBroker group state file ({DescribeDamage(path)})");
        }

        var padded = !file.Created && header.Contents == StateFileContents.State && header.Length < FileLength(window) ? header.Length : 0;
        return new GroupAckStore(file, window) { WasBlank = blank, PaddedFrom = padded };
    }

    /// <summary>
    /// The length in bytes of the file before <see cref="Open"/> padded it with zeros to <see cref="FileLength"/>, when
    /// it held state (its ack floor whole) and was shorter: the done marks past its end are lost (read as not done), so
    /// what the group had acked above its floor is delivered again. 0 when it was not padded (or was created, or held no
    /// state: <see cref="WasBlank"/>).
    /// </summary>
    public long PaddedFrom { get; private init; }

    /// <summary>
    /// What the file at <paramref name="path"/> holds, read without mapping or changing it (<see cref="StateFileHeader"/>;
    /// slot 2 is the ack floor). A file cut short after its magic, before its ack floor, holds no state (as an empty
    /// one): what the group acked is lost with its floor. A file longer than a group state file of
    /// <paramref name="window"/> (<see cref="FileLength"/>) is <see cref="StateFileContents.Damaged"/>, as a wrong magic
    /// is: damaged, or of another version's layout; nothing says which of its slots are the group's.
    /// </summary>
    public static StateFileHeader Inspect(string path, int window = DefaultWindow)
    {
        var header = StateFileHeader.Read(path, Magic, FloorSlot + 1, "group state file", "ack floor");
        var full = FileLength(window);
        return header.Contents == StateFileContents.State && header.Length > full
            ? header with { Contents = StateFileContents.Damaged, Reason = $"{header.Length} bytes, longer than a group state file's {full}: damaged, or not written by this version of FastBroker" }
            : header;
    }

    /// <summary>The floor in a group's state file, read without mapping it (null: missing or not a group state file).</summary>
    public static long? ReadFloor(string path) => Inspect(path) is { Contents: StateFileContents.State } header ? header.Slot(FloorSlot) : null;

    /// <summary>The length in bytes of a group state file with a window of <paramref name="window"/> offsets.</summary>
    public static long FileLength(int window = DefaultWindow) => (HeaderSlots + (long)window) * 8;

    /// <summary>
    /// Why the file at <paramref name="path"/> is not a group's state, for a report, read without mapping or changing it:
    /// a wrong magic (a damaged or foreign header; in a file too short for its magic, the bytes it has), or why it
    /// cannot be read. Meant for a file <see cref="Inspect"/> finds <see cref="StateFileContents.Damaged"/>.
    /// </summary>
    public static string DescribeDamage(string path) => Inspect(path).Reason;

    /// <summary>True when <paramref name="offset"/> is recorded as done.</summary>
    public bool IsDone(long offset)
    {
        var floor = Floor;
        if (offset < floor)
        {
            return true;
        }

        return offset < floor + _window && _file.Read(HeaderSlots + (offset & (_window - 1))) == offset + 1;
    }

    /// <summary>Records that <paramref name="offset"/> is done; it must lie inside the window above the floor.</summary>
    public void MarkDone(long offset)
    {
        var floor = Floor;
        if (offset < floor)
        {
            return;
        }

        if (offset >= floor + _window)
        {
            throw new InvalidOperationException($"offset {offset} is beyond the group's window ({floor} + {_window})");
        }

        _file.Write(HeaderSlots + (offset & (_window - 1)), offset + 1);
    }

    /// <summary>Moves the floor past every consecutive done offset; returns the new floor.</summary>
    public long AdvanceFloorWhileDone()
    {
        var floor = Floor;
        var start = floor;
        while (floor < start + _window && _file.Read(HeaderSlots + (floor & (_window - 1))) == floor + 1)
        {
            floor++;
        }

        if (floor != start)
        {
            _file.Write(FloorSlot, floor);
        }

        return floor;
    }

    /// <summary>Moves the persisted floor up (never down).</summary>
    public void AdvanceFloor(long floor)
    {
        if (floor > Floor)
        {
            _file.Write(FloorSlot, floor);
        }
    }

    /// <summary>
    /// Forgets every offset at or past <paramref name="end"/>, the journal's end: its done marks are cleared and a floor
    /// above it comes down to it. After a power loss with <c>Written</c> durability the journal's tail can be cut while
    /// this page survived; new messages then reuse those offsets and must not be taken as done. Marks first, floor last:
    /// a crash in between leaves a state that the next open clamps again.
    /// </summary>
    /// <returns>The floor before, and how many done marks were cleared (the floor unchanged and 0: nothing was ahead).</returns>
    public (long FloorBefore, int Cleared) ForgetFrom(long end)
    {
        var cleared = 0;
        for (long slot = 0; slot < _window; slot++)
        {
            // A mark is o + 1 for offset o: o >= end.
            if (_file.Read(HeaderSlots + slot) > end)
            {
                _file.Write(HeaderSlots + slot, 0);
                cleared++;
            }
        }

        var floor = Floor;
        if (floor > end)
        {
            _file.Write(FloorSlot, end);
        }

        return (floor, cleared);
    }

    /// <summary>Offsets in [floor, <paramref name="end"/>) recorded as done, in order.</summary>
    public IEnumerable<long> DoneBetweenFloorAnd(long end)
    {
        var floor = Floor;
        var stop = Math.Min(end, floor + _window);
        for (var o = floor; o < stop; o++)
        {
            if (_file.Read(HeaderSlots + (o & (_window - 1))) == o + 1)
            {
                yield return o;
            }
        }
    }

    /// <summary>msync now, on this thread: only needed against OS crashes.</summary>
    public void Flush() => _file.Flush();

    /// <summary>After an update: has the flusher msync the file (no-op without one); returns the generation that covers it.</summary>
    public long RequestSync() => _file.RequestSync();

    /// <summary>The sync generation requested last (0: never).</summary>
    public long SyncRequested => _file.SyncRequested;

    /// <summary>The sync generation the last msync covers.</summary>
    public long Synced => _file.Synced;

    /// <summary>True when the file was removed (or renamed away) while this store held it (<see cref="MappedStateFile.WasRemoved()"/>).</summary>
    public bool WasRemoved() => _file.WasRemoved();

    /// <summary>Where the file was renamed to, once <see cref="WasRemoved"/> found it renamed away (<see cref="MappedStateFile.RenamedTo"/>).</summary>
    public string? RenamedTo => _file.RenamedTo;

    /// <summary>
    /// After <see cref="WasRemoved"/>: writes the state this store holds as a new file at its path and goes on in it
    /// (<see cref="MappedStateFile.CopyToPath"/>); the removed file is closed (<paramref name="removedSyncFailure"/>: its
    /// last msync failed, which loses nothing: <see cref="MappedStateFile.CloseSuperseded"/>). False when a file is at the path (left as
    /// it is, this store goes on in the removed one) or the topic's directory is gone. Called under the owner's lock,
    /// with no store in between.
    /// </summary>
    /// <exception cref="IOException">The new file could not be written; this store goes on in the removed one.</exception>
    public bool Rewrite(out BrokerException? removedSyncFailure)
    {
        removedSyncFailure = null;
        if (_file.CopyToPath() is not { } copy)
        {
            return false;
        }

        var removed = _file;
        _file = copy;
        removedSyncFailure = removed.CloseSuperseded();
        return true;
    }

    /// <inheritdoc />
    public void Dispose() => _file.Dispose();
}
