using System.Buffers.Binary;
using FastBroker.Journal.Internal;

namespace FastBroker.Journal;

/// <summary>Opening readers, named readers' saved positions, and the readers the journal keeps track of (seeks: JournalLog.Seek.cs).</summary>
public sealed partial class JournalLog
{
    private const string ReadersDirectoryName = "readers";

    /// <summary>
    /// Opens a reader at <paramref name="start"/>. Readers see durable records only and may be used from any one
    /// thread each. <paramref name="verifyChecksums"/> (the default) checks each record not yet known good in this
    /// process as it is read: its length, its offset and its CRC32C (no allocation; the CRC32C instruction over the
    /// record's bytes). Known good, and read by its length word alone, is a record below its segment's <i>verified
    /// watermark</i>: every record of a segment this process created (its writer computed the CRC32C from memory, a
    /// standby's copy checked each record received) or whose records the open checked (the tail always, sealed segments
    /// with <see cref="JournalOptions.VerifySealedSegmentsOnOpen"/>), and in a sealed segment the open trusted, the
    /// records from its start that a checking reader or seek has already checked (a seek to a start in its middle first
    /// checks the records from the watermark up to the start). So such a segment is checked once per process, by its
    /// first reader, and steady-state reads of fresh records compute no CRC32C at all. A record that
    /// fails is never returned: the read throws <see cref="JournalCorruptionException"/> naming the segment file, the
    /// byte position and the offset, and keeps throwing there (a run returns the records before it first). Bytes that
    /// change on disk after this process wrote or checked them are not checked again on read: <c>fastbroker journal
    /// verify</c> and the next open that verifies find them. Only a caller that checks the records itself should pass
    /// false: a damaged record of a trusted segment is then returned as it is (a damaged length word may end the read
    /// with an <see cref="ArgumentOutOfRangeException"/>).
    /// A reader does not hold retention back: if retention deletes records it has not read, it moves on to the first
    /// retained one and counts them in <see cref="JournalReader.Skipped"/>. With <paramref name="pinRetention"/> it is
    /// a retention floor instead, like <see cref="MinRetainedOffset"/> at its <see cref="JournalReader.NextOffset"/>,
    /// until disposed: for a copy that must never have a gap (the replication stream). A pinned reader that stops
    /// reading stops retention, and the disk fills, unless its <see cref="JournalReader.MaxRetentionHoldBytes"/> bounds
    /// what it may hold back (past that, retention passes it like any reader). The journal holds its readers weakly: one
    /// dropped undisposed lets go of its segment and its floor once it is garbage collected (see
    /// <see cref="JournalReader"/>'s remarks), not before.
    /// </summary>
    public JournalReader OpenReader(ReadStart start, bool verifyChecksums = true, bool pinRetention = false) =>
        OpenReaderCore(start, null, verifyChecksums, pinRetention);

    /// <summary>
    /// Opens a named reader: from its saved position (<see cref="JournalReader.SavePosition"/>) if it has one,
    /// else from <paramref name="startIfNew"/>.
    /// </summary>
    public JournalReader OpenReader(string name, ReadStart startIfNew, bool verifyChecksums = true)
    {
        ValidateReaderName(name);
        var start = TryGetSavedPosition(name, out var saved) ? ReadStart.FromOffset(saved) : startIfNew;
        return OpenReaderCore(start, name, verifyChecksums, pin: false);
    }

    /// <summary>The position a named reader last saved.</summary>
    public bool TryGetSavedPosition(string name, out long offset)
    {
        ValidateReaderName(name);
        return TryReadPositionFile(ReaderPositionPath(name), out offset);
    }

    internal void SaveReaderPosition(string name, long offset) => WritePositionFile(ReaderPositionPath(name), offset);

    /// <summary>Reads a saved reader position (8-byte offset, CRC32C of it); false when missing or damaged.</summary>
    internal static bool TryReadPositionFile(string path, out long offset)
    {
        offset = -1;
        if (!File.Exists(path))
        {
            return false;
        }

        var bytes = File.ReadAllBytes(path);
        if (bytes.Length != 12 || BinaryPrimitives.ReadUInt32LittleEndian(bytes.AsSpan(8)) != Crc32C.Compute(bytes.AsSpan(0, 8)))
        {
            return false;
        }

        offset = BinaryPrimitives.ReadInt64LittleEndian(bytes);
        return true;
    }

    /// <summary>Writes a reader position: fsync'd temporary file, an atomic rename over the old one, the directory fsync'd.</summary>
    internal static void WritePositionFile(string path, long offset)
    {
        System.IO.Directory.CreateDirectory(Path.GetDirectoryName(path)!);
        Span<byte> bytes = stackalloc byte[12];
        BinaryPrimitives.WriteInt64LittleEndian(bytes, offset);
        BinaryPrimitives.WriteUInt32LittleEndian(bytes[8..], Crc32C.Compute(bytes[..8]));
        DurableFile.WriteAllBytes(path, bytes);
    }

    private string ReaderPositionPath(string name) => Path.Combine(_directory, ReadersDirectoryName, name + ".pos");

    private static void ValidateReaderName(string name)
    {
        if (string.IsNullOrEmpty(name) || name.Length > 200 || !name.All(c => char.IsAsciiLetterOrDigit(c) || c is '-' or '_' or '.') || name[0] == '.')
        {
            throw new ArgumentException("Reader names are 1-200 characters of [A-Za-z0-9._-], not starting with '.'.", nameof(name));
        }
    }

    private JournalReader OpenReaderCore(ReadStart start, string? name, bool verify, bool pin)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        JournalReader? pinned = null;
        if (pin)
        {
            // Registered before it looks for its segment, with a floor under everything: a retention pass either sees
            // it (and deletes nothing) or has finished, and then the search below sees what that pass left.
            pinned = new JournalReader(this, name, null, 0, long.MinValue, verify, pinsRetention: true);
            lock (_segmentsLock)
            {
                _pinningReaders.Add(pinned.Registration);
            }
        }

        Segment? segment;
        int position;
        long offset;
        try
        {
            Locate(start, out segment, out position, out offset);
        }
        catch when (pinned is not null)
        {
            Unpin(pinned);
            GC.SuppressFinalize(pinned);
            throw;
        }

        JournalReader reader;
        if (pinned is not null)
        {
            pinned.Place(segment, position, offset);
            reader = pinned;
        }
        else
        {
            reader = new JournalReader(this, name, segment, position, offset, verify);
        }

        // Registered after it holds its segment: a pass that retired that segment before (TryAcquire refused it) is
        // no concern, and any later pass finds the reader here.
        lock (_readersLock)
        {
            _readers.Add(reader.Registration);
        }

        return reader;
    }

    /// <summary>Readers registered with the journal (opened, not yet disposed or collected). Tests, diagnostics.</summary>
    internal int OpenReaderCount
    {
        get
        {
            lock (_readersLock)
            {
                return _readers.Count;
            }
        }
    }

    /// <summary>Readers registered as retention floors (opened with <c>pinRetention</c>, not yet disposed or collected).</summary>
    internal int PinningReaderCount
    {
        get
        {
            lock (_segmentsLock)
            {
                return _pinningReaders.Count;
            }
        }
    }

    /// <summary>A reader was disposed or finalized: retention no longer looks at it.</summary>
    internal void Unregister(JournalReader reader)
    {
        lock (_readersLock)
        {
            _readers.Remove(reader.Registration);
        }
    }

    /// <summary>
    /// After a pass retired segments: every parked reader in one of them lets go of it, so its mapping goes and the
    /// unlinked file's blocks are freed (<see cref="JournalReader.Park"/>). A reader that is reading keeps its segment
    /// until it parks. One array per pass that deleted something; nothing per record.
    /// </summary>
    private void ReleaseRetiredSegmentsOfParkedReaders()
    {
        WeakReference<JournalReader>[] readers;
        lock (_readersLock)
        {
            if (_readers.Count == 0)
            {
                return;
            }

            readers = [.. _readers];
        }

        foreach (var registration in readers)
        {
            // A cleared one is a reader collected undisposed: its finalizer releases its segment.
            if (registration.TryGetTarget(out var reader))
            {
                reader.ReleaseRetiredSegment();
            }
        }
    }

    /// <summary>A pinning reader was disposed or finalized: its floor goes.</summary>
    internal void Unpin(JournalReader reader)
    {
        lock (_segmentsLock)
        {
            _pinningReaders.Remove(reader.Registration);
        }
    }

    /// <summary>Tests: the journal's segments now, oldest first (not acquired: use while the journal cannot retire them).</summary>
    internal Segment[] CurrentSegments => Volatile.Read(ref _segments);

    /// <summary>The segment starting exactly at <paramref name="baseOffset"/>, acquired; null if none (yet).</summary>
    internal Segment? AcquireSegmentStartingAt(long baseOffset)
    {
        while (true)
        {
            var segments = Volatile.Read(ref _segments);
            var i = FindSegmentIndex(segments, baseOffset);
            if (i < 0 || segments[i].BaseOffset != baseOffset)
            {
                // Retention may have removed it (a reader that lost its segment): callers re-locate.
                return null;
            }

            if (segments[i].TryAcquire())
            {
                return segments[i];
            }
        }
    }
}
