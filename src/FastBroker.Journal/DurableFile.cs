using FastBroker.Journal.Internal;

namespace FastBroker.Journal;

/// <summary>
/// Small files kept beside journals (a topic's settings) made as durable as the segments: written to a temporary
/// file, flushed to disk, renamed over the old one, and the directory fsync'd so that the new name survives a power
/// cut. Until <see cref="WriteAllBytes"/> returns, a crash leaves the old file or the new one, whole; never an empty
/// or a missing one where there was one before. Linux (like the journal).
/// </summary>
public static class DurableFile
{
    /// <summary>Durably replaces <paramref name="path"/> with <paramref name="bytes"/> (creates it if absent).</summary>
    /// <exception cref="IOException">The file could not be written or renamed.</exception>
    /// <exception cref="JournalException"><see cref="JournalErrorCode.IoError"/>: the directory could not be synced.</exception>
    public static void WriteAllBytes(string path, ReadOnlySpan<byte> bytes)
    {
        path = Path.GetFullPath(path);
        var temp = path + ".tmp";
        using (var stream = new FileStream(temp, FileMode.Create, FileAccess.Write, FileShare.None))
        {
            stream.Write(bytes);
            stream.Flush(flushToDisk: true);
        }

        File.Move(temp, path, overwrite: true);
        Native.SyncDirectory(Path.GetDirectoryName(path)!);
    }

    /// <summary>fsyncs a directory, so that the names created (or removed) in it survive a power cut.</summary>
    /// <exception cref="JournalException"><see cref="JournalErrorCode.IoError"/>: it could not be opened or synced.</exception>
    public static void SyncDirectory(string directory) => Native.SyncDirectory(Path.GetFullPath(directory));
}
