using System.Buffers.Binary;
using FastBroker.Journal.Internal;

namespace FastBroker.Journal;

/// <summary>dump and verify on a journal that a process has open: the end of its last segment moves.</summary>
public static partial class JournalInspector
{
    /// <summary>
    /// Whether a process (this one included) has the journal in <paramref name="directory"/> open: its
    /// <c>journal.lock</c> is held with the exclusive flock <see cref="JournalLog.Open"/> takes. On Linux that is read
    /// from <c>/proc/locks</c>, matched by the lock file's device and inode alone (a lock inherited by a process after
    /// the one that took it exited is listed under the exited one's PID): no lock is taken or asked for, so a process
    /// opening the journal at that instant is never refused because of the probe. Outside the initial PID namespace the
    /// kernel leaves such an inherited lock out of <c>/proc/locks</c>; when it lists no lock on the file there, the open
    /// files of the processes this one can look into are read (<c>/proc/&lt;pid&gt;/fdinfo</c>). A lock held by a
    /// process outside this one's PID namespace (another container sharing the directory) is not listed in either, so
    /// such a journal is not seen as open. Only where <c>/proc/locks</c> cannot be read (or the C library has no
    /// <c>statx</c>) is the lock probed with a non-blocking shared flock released at once: it never waits and never
    /// takes the owner's lock, but an open started in the microseconds it is held fails as "already open". False when
    /// there is no lock file, or it cannot be looked at for another reason than the lock.
    /// </summary>
    public static bool IsOpen(string directory)
    {
        var path = Path.Combine(directory, JournalLog.LockFileName);
        try
        {
            if (!Native.TryGetFileId(path, out var id, out _))
            {
                return false; // no lock file (no process ever opened the journal here), or one this process cannot reach
            }

            if (FlockTable.HoldsExclusiveFlock(id) is { } held)
            {
                // Outside the initial PID namespace /proc/locks leaves out a lock whose taker has exited (held by a
                // process that inherited the open file): the processes' open files still show it.
                return held || FlockTable.HeldThroughAnOpenFile(id);
            }
        }
        catch (Exception e) when (e is EntryPointNotFoundException or DllNotFoundException)
        {
            // A C library without statx (glibc before 2.28): probe the lock itself.
        }

        return ProbeWithSharedFlock(path);
    }

    /// <summary>
    /// The processes (pids) holding an exclusive flock on the file at <paramref name="lockFile"/>, as <c>/proc/locks</c>
    /// lists them: the lock <see cref="JournalLog.Open"/> takes on <c>journal.lock</c> and the broker on its data
    /// directory's <c>broker.lock</c>. Read without taking or asking for a lock. Empty when none is listed; null when it
    /// cannot be known (no such file, not Linux, <c>/proc/locks</c> unreadable, a C library without <c>statx</c>). A
    /// lock inherited by a process after its taker exited is listed under the taker's pid, and one held from outside
    /// this process's PID namespace not at all: for a message naming the holder, never for a decision.
    /// </summary>
    public static IReadOnlyList<int>? LockHolders(string lockFile)
    {
        if (!OperatingSystem.IsLinux())
        {
            return null;
        }

        try
        {
            return Native.TryGetFileId(Path.GetFullPath(lockFile), out var id, out _) ? FlockTable.ExclusiveFlockHolders(id) : null;
        }
        catch (Exception e) when (e is EntryPointNotFoundException or DllNotFoundException)
        {
            return null;
        }
    }

    /// <summary>
    /// The fallback of <see cref="IsOpen"/>: whether a non-blocking shared flock on <paramref name="path"/> is refused
    /// (the owner's exclusive one is held). While it is held, an open of the journal fails.
    /// </summary>
    internal static bool ProbeWithSharedFlock(string path)
    {
        try
        {
            // Read access with sharing takes LOCK_SH | LOCK_NB on Unix, which fails (EWOULDBLOCK) while the owner's
            // FileShare.None (LOCK_EX) is held; it creates no file.
            using var probe = File.OpenHandle(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite);
            return false;
        }
        catch (IOException e) when (e.HResult == Native.EAgain)
        {
            return true; // EWOULDBLOCK: held, the journal is open
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return false; // no lock file (no process ever opened it here), or one this process cannot read
        }
    }

    /// <summary>
    /// Whether the journal is open (<see cref="IsOpen"/>): asked before the files are read, and again, while the answer is
    /// no, when the end of the last segment does not check out (a process may have opened it since).
    /// </summary>
    private sealed class OpenProbe(string directory)
    {
        public bool Open { get; private set; } = IsOpen(directory);

        public bool Now() => Open || (Open = IsOpen(directory));
    }

    /// <summary>
    /// Opens a segment to read it. The last file of an open journal whose header does not read as valid may be a segment
    /// being created (the writer creates or renames the file, then stamps its header, and only then writes records to
    /// it): it is read again a few times before the header is taken as blank or damaged. Null with
    /// <paramref name="missing"/> when the file is no longer there (removed since the directory was listed).
    /// </summary>
    private static Segment? OpenSegment(string path, bool last, OpenProbe probe, out string? error, out bool unsupported, out bool missing)
    {
        t_beforeSegmentOpen?.Invoke(path);
        (error, unsupported, missing) = (null, false, false);
        try
        {
            var segment = Segment.Open(path, writable: false, 4, out error, out unsupported);
            for (var attempt = 0; segment is null && last && attempt < 5 && probe.Now(); attempt++)
            {
                Thread.Sleep(attempt);
                segment = Segment.Open(path, writable: false, 4, out error, out unsupported);
            }

            return segment;
        }
        catch (IOException e) when (e is FileNotFoundException or DirectoryNotFoundException)
        {
            missing = true;
            return null;
        }
    }

    /// <summary>What is at the end of the last segment of an open journal, read again (<see cref="SettleTail"/>).</summary>
    private enum Tail
    {
        /// <summary>A valid record is there now: scan on.</summary>
        Record,

        /// <summary>Nothing follows what is there: the end, or the record being written (the end for now).</summary>
        End,

        /// <summary>Something follows what is there, which still does not check out: damage.</summary>
        Damage,
    }

    /// <summary>
    /// The scan of the last, unsealed segment of an open journal stopped at <paramref name="position"/> (the record
    /// expected there is <paramref name="expectedOffset"/>) at what it could not take: it may be the record being
    /// written (the writer stores its length word first and its CRC last), or bytes stored since a zero length word
    /// was read there, or damage. Reads the segment again: <see cref="Tail.Record"/> when a valid record is there now,
    /// <see cref="Tail.End"/> when no byte after the extent its length word gives (or after <paramref name="position"/>,
    /// without one) is non-zero, and <see cref="Tail.Damage"/> when bytes follow it yet it still does not check out
    /// after a few reads: the writer stores a record whole before the next one's first byte, so it is final. A length
    /// word the writer would not store there (shorter than a record header, past the segment) is damage.
    /// </summary>
    private static Tail SettleTail(Segment segment, int position, int cut, long expectedOffset)
    {
        for (var attempt = 0; ; attempt++)
        {
            var bytes = segment.ScanBytes; // again: its end (the data written so far) moves on with the writer
            var cap = Math.Min(segment.MappedLength, cut);
            var limit = Math.Min(bytes.Length, cap);
            if (RecordLayout.Check(bytes, position, limit, expectedOffset, verifyCrc: true, out _) == RecordStatus.Ok)
            {
                return Tail.Record;
            }

            var word = position + 4 <= limit ? BinaryPrimitives.ReadUInt32LittleEndian(bytes[position..]) : 0u;
            var extent = word == 0 ? position : position + (((long)word + RecordLayout.Alignment - 1) & ~(long)(RecordLayout.Alignment - 1));
            if (word != 0 && (word < RecordLayout.HeaderSize || extent > cap))
            {
                return Tail.Damage;
            }

            if (extent >= limit || SegmentScanner.EndOfNonZero(bytes[..limit], (int)extent) == extent)
            {
                return Tail.End;
            }

            if (attempt == 4)
            {
                return Tail.Damage;
            }

            Thread.Sleep(attempt); // 0 first: a yield; what the writer stored may take a moment to be seen whole
        }
    }
}
