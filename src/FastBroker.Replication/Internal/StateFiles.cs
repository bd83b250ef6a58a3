using System.Buffers.Binary;
using System.Numerics;
using FastBroker.Journal;

namespace FastBroker.Replication.Internal;

/// <summary>
/// The broker state outside the journals that a failover must keep: durable subscription positions
/// (<c>subscriptions/*.pos</c>), work-queue group state (<c>topics/*/groups/*.state</c>) and the idempotent producers'
/// checkpoint (<c>producers.state</c>) with the producer epochs given (<c>producers.epochs</c>). The primary sends a file whole when the standby's copy lacks its contents
/// (<see cref="StateCopies"/>: at an attach, what the standby's <see cref="StateDigests"/> say it holds); the standby
/// replaces its copy atomically. A file the primary no longer has (found gone by a check, or reported by the standby at
/// an attach and not listed) is named in a <see cref="FrameKind.StateGone"/> frame, and the
/// standby removes its copy.
/// </summary>
internal static class StateFiles
{
    private const string ProducerCheckpointFile = FastBroker.Engine.ProducerCheckpoint.FileName;
    private const string ProducerEpochsFile = FastBroker.Engine.ProducerEpochFile.FileName;

    /// <summary>The state files in <paramref name="dataDirectory"/>, each with its <see cref="FileInfo"/> (a directory listing, no read): what a standby reports in its <c>STATE_DIGESTS</c> (<see cref="StateDigests"/>).</summary>
    public static IEnumerable<(string Relative, FileInfo Info)> EnumerateInfo(string dataDirectory)
    {
        var checkpoint = new FileInfo(Path.Combine(dataDirectory, ProducerCheckpointFile));
        if (checkpoint.Exists)
        {
            yield return (ProducerCheckpointFile, checkpoint);
        }

        var epochs = new FileInfo(Path.Combine(dataDirectory, ProducerEpochsFile));
        if (epochs.Exists)
        {
            yield return (ProducerEpochsFile, epochs);
        }

        var subs = new DirectoryInfo(Path.Combine(dataDirectory, "subscriptions"));
        if (subs.Exists)
        {
            foreach (var f in subs.EnumerateFiles("*.pos"))
            {
                yield return (Path.GetRelativePath(dataDirectory, f.FullName), f);
            }
        }

        var topics = new DirectoryInfo(Path.Combine(dataDirectory, "topics"));
        if (topics.Exists)
        {
            foreach (var t in topics.EnumerateDirectories())
            {
                var groups = new DirectoryInfo(Path.Combine(t.FullName, "groups"));
                if (groups.Exists)
                {
                    foreach (var f in groups.EnumerateFiles("*.state"))
                    {
                        yield return (Path.GetRelativePath(dataDirectory, f.FullName), f);
                    }
                }
            }
        }
    }

    /// <summary>True when <paramref name="relative"/> is a state file path (the standby writes nothing else from STATE frames).</summary>
    public static bool IsStatePath(string relative)
    {
        if (Path.IsPathRooted(relative) || relative.Contains("..", StringComparison.Ordinal))
        {
            return false;
        }

        var parts = relative.Split('/');
        return (parts.Length == 1 && parts[0] is ProducerCheckpointFile or ProducerEpochsFile)
            || (parts.Length == 2 && parts[0] == "subscriptions" && parts[1].EndsWith(".pos", StringComparison.Ordinal))
            || (parts.Length == 4 && parts[0] == "topics" && parts[2] == "groups" && parts[3].EndsWith(".state", StringComparison.Ordinal));
    }

    /// <summary>The durable subscription whose position file <paramref name="relative"/> (a state path) is; null for another state file.</summary>
    public static string? SubscriptionOf(string relative) =>
        relative.StartsWith("subscriptions", StringComparison.Ordinal) && relative.EndsWith(".pos", StringComparison.Ordinal)
            ? Path.GetFileNameWithoutExtension(relative)
            : null;

    /// <summary>True when <paramref name="relative"/> (a state path) is a work-queue group's state.</summary>
    public static bool IsGroupStatePath(string relative) =>
        relative.StartsWith("topics/", StringComparison.Ordinal) && relative.EndsWith(".state", StringComparison.Ordinal);

    /// <summary>
    /// True when no file is at <paramref name="path"/> (nor the directory it would be in); false when there is one, and
    /// when that cannot be told (an I/O error, no permission): a file that cannot be read is not taken for gone.
    /// </summary>
    public static bool IsGone(string path)
    {
        try
        {
            File.GetAttributes(path);
            return false;
        }
        catch (Exception e) when (e is FileNotFoundException or DirectoryNotFoundException)
        {
            return true;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return false;
        }
    }

    public static byte[]? ReadShared(string path)
    {
        try
        {
            using var f = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete);
            var bytes = new byte[f.Length];
            f.ReadExactly(bytes);
            return bytes;
        }
        catch (IOException)
        {
            return null;
        }
    }

    /// <summary>
    /// Standby: replaces a position file, the producers' checkpoint or their epochs whole (readers never see a torn one): written to a
    /// temporary file, fsynced, renamed over the copy. The caller fsyncs the directory before it acknowledges the state
    /// (once for every file of a wake-up), so after a power cut the copy is the old file or the new one, never an empty
    /// one. Group state is not written here: it is stored into a mapping of the copy and msynced.
    /// </summary>
    /// <param name="path">The copy to replace.</param>
    /// <param name="bytes">Its new contents.</param>
    /// <param name="step">Tests: told each step once taken (<c>write</c>, <c>fsync</c>, <c>rename</c>); null: nobody.</param>
    public static void WriteAtomically(string path, ReadOnlySpan<byte> bytes, Action<string>? step = null)
    {
        Directory.CreateDirectory(Path.GetDirectoryName(path)!);
        var tmp = path + ".tmp";
        using (var f = new FileStream(tmp, FileMode.Create, FileAccess.Write, FileShare.None))
        {
            f.Write(bytes);
            step?.Invoke("write");
            f.Flush(flushToDisk: true); // its data before its name: a rename reaching the disk first leaves an empty copy
            step?.Invoke("fsync");
        }

        File.Move(tmp, path, overwrite: true);
        step?.Invoke("rename");
    }

    /// <summary>
    /// Tells a changed file from another of its versions (with its length): the CRC32C of its bytes in the low 32 bits,
    /// <see cref="Check"/> in the high 32. The same on every node and in every process (the standby sends it in
    /// STATE_DIGESTS: <see cref="StateDigests"/>). Not a CRC32C alone: <c>producers.state</c> ends with the CRC32C of
    /// what precedes it, and a CRC over data followed by its own CRC is one constant for every such file, so each
    /// version of it of one length would hash the same (and a new epoch replacing an older one would never be sent).
    /// </summary>
    public static ulong Hash(ReadOnlySpan<byte> bytes) => ((ulong)Check(bytes) << 32) | Crc32C.Compute(bytes);

    /// <summary>
    /// A 32-bit multiply-rotate hash of <paramref name="bytes"/> (8 bytes a step, little-endian): not linear over bits
    /// as a CRC is (the carries of the multiplications), so a file that holds its own CRC32C still changes it.
    /// </summary>
    public static uint Check(ReadOnlySpan<byte> bytes)
    {
        const ulong Prime1 = 0x9E3779B97F4A7C15;
        const ulong Prime2 = 0xC2B2AE3D27D4EB4F;
        var h = Prime2 ^ (ulong)bytes.Length;
        var at = 0;
        for (; at + 8 <= bytes.Length; at += 8)
        {
            h = BitOperations.RotateLeft(h ^ (BinaryPrimitives.ReadUInt64LittleEndian(bytes[at..]) * Prime2), 29) * Prime1;
        }

        var tail = 0UL;
        for (; at < bytes.Length; at++)
        {
            tail = (tail << 8) | bytes[at];
        }

        h = BitOperations.RotateLeft(h ^ (tail * Prime2), 29) * Prime1;
        h ^= h >> 33;
        h *= Prime2;
        h ^= h >> 29;
        h *= Prime1;
        return (uint)(h ^ (h >> 32));
    }
}
