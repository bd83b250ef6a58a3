using FastBroker.Journal;

namespace FastBroker.Replication.Internal;

/// <summary>
/// STATE_DIGESTS (<see cref="FrameKind.StateDigests"/>), the standby's first frame after the WELCOME: per state file
/// it holds (<see cref="StateFiles"/>), its relative path, length, CRC32C and second check (<see cref="StateFiles.Hash"/>).
/// The primary sends whole, at the attach, only the files whose length or hash differ from its own and those the
/// standby lacks (<see cref="StateCopies.Reported"/>): a standby that attaches again with copies identical to the
/// primary's files is sent none. A copy reported whose file the primary does not have is named in a
/// <see cref="FrameKind.StateGone"/> frame, and the standby removes it; a copy left out (unreadable, larger than a
/// frame, past the frame's room) that the attach did not send, the standby asks for once the attach's POSITIONS frame
/// came (<see cref="FrameKind.StateWanted"/>), and the primary, which does not have it, names it in the same way. Each copy reported is synced first (the file, then every directory on its path), so
/// that what the primary skips is as durable as a copy it sent, which the STATE_ACK of the attach covers.
/// </summary>
internal static class StateDigests
{
    /// <summary>At most this many files in one frame (a frame is at most <see cref="Wire.MaxFrame"/> bytes).</summary>
    public const int MaxFiles = 1 << 20;

    /// <summary>
    /// The files reported stop short of this many bytes of frame (half of <see cref="Wire.MaxFrame"/>: about 300,000
    /// files of 100-byte names); those after it are not reported, and go whole.
    /// </summary>
    private const int MaxFrameBytes = Wire.MaxFrame / 2;

    /// <summary>One file's digest: its relative, '/'-separated path, its length and <see cref="StateFiles.Hash"/>.</summary>
    public readonly record struct Digest(string Relative, long Length, ulong Hash);

    /// <summary>
    /// Standby: reads every state file in <paramref name="dataDirectory"/>, syncs it, and digests it; then syncs the
    /// directories that hold them (and theirs, up to <paramref name="dataDirectory"/>). A file that cannot be read is left
    /// out (the primary sends it whole). Null when a sync failed: nothing is reported, and every file goes whole.
    /// </summary>
    /// <param name="dataDirectory">The node's data directory.</param>
    /// <param name="failure">Why a sync failed (null when none did).</param>
    public static List<Digest>? Collect(string dataDirectory, out string? failure)
    {
        failure = null;
        var digests = new List<Digest>();
        var directories = new HashSet<string>(StringComparer.Ordinal);
        var root = Path.GetFullPath(dataDirectory);
        var frameBytes = 4L;
        var buffer = Array.Empty<byte>(); // one buffer for them all: a position file is 264 KiB, and there may be thousands
        try
        {
            foreach (var (relative, info) in StateFiles.EnumerateInfo(dataDirectory))
            {
                int length;
                try
                {
                    // Opened for writing only so that the flush below is an fsync (a read-only stream skips it).
                    using var f = new FileStream(info.FullName, FileMode.Open, FileAccess.ReadWrite, FileShare.ReadWrite | FileShare.Delete);
                    if (f.Length > Wire.MaxFrame)
                    {
                        continue; // no STATE frame holds it: the primary's file cannot be this
                    }

                    length = (int)f.Length;
                    if (buffer.Length < length)
                    {
                        buffer = new byte[Math.Max(length, buffer.Length * 2)];
                    }

                    f.ReadExactly(buffer, 0, length);
                    f.Flush(flushToDisk: true);
                }
                catch (Exception e) when (e is IOException or UnauthorizedAccessException)
                {
                    continue; // unreadable (or gone): not reported, so sent whole
                }

                var key = relative.Replace('\\', '/');
                frameBytes += 2 + System.Text.Encoding.UTF8.GetByteCount(key) + 16;
                if (frameBytes > MaxFrameBytes || digests.Count == MaxFiles)
                {
                    break;
                }

                digests.Add(new Digest(key, length, StateFiles.Hash(buffer.AsSpan(0, length))));
                for (var dir = Path.GetDirectoryName(Path.GetFullPath(info.FullName)); dir is not null && dir.Length >= root.Length; dir = Path.GetDirectoryName(dir))
                {
                    if (!directories.Add(dir))
                    {
                        break; // it and those above it are in already
                    }
                }
            }

            foreach (var dir in directories)
            {
                DurableFile.SyncDirectory(dir);
            }
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or JournalException)
        {
            failure = e.Message;
            return null;
        }

        return digests;
    }

    /// <summary>The STATE_DIGESTS frame: a count, then per file its path, length (i64), CRC32C (u32) and second check (u32).</summary>
    public static void Write(FrameBuffer f, IReadOnlyList<Digest> digests)
    {
        f.Begin(FrameKind.StateDigests).U32((uint)digests.Count);
        foreach (var d in digests)
        {
            f.Str(d.Relative).I64(d.Length).U32((uint)d.Hash).U32((uint)(d.Hash >> 32));
        }

        f.End();
    }

    /// <summary>Parses a STATE_DIGESTS body whole; throws <see cref="InvalidDataException"/> for a path that is not a state file's, or a bad length.</summary>
    public static List<Digest> Parse(ReadOnlySpan<byte> body)
    {
        var r = new FrameReader(body);
        var n = r.U32();
        if (n > MaxFiles)
        {
            throw new InvalidDataException($"STATE_DIGESTS of {n} files (at most {MaxFiles})");
        }

        var digests = new List<Digest>((int)Math.Min(n, 4096u));
        for (var i = 0u; i < n; i++)
        {
            var relative = r.Str();
            var length = r.I64();
            var crc = r.U32();
            var check = r.U32();
            if (!StateFiles.IsStatePath(relative) || length is < 0 or > Wire.MaxFrame)
            {
                throw new InvalidDataException($"STATE_DIGESTS entry {i + 1} of {n}: '{relative}' of {length} bytes is not a state file's");
            }

            digests.Add(new Digest(relative, length, ((ulong)check << 32) | crc));
        }

        return r.Remaining == 0 ? digests : throw new InvalidDataException($"STATE_DIGESTS: {r.Remaining} bytes after the last of {n} files");
    }
}
