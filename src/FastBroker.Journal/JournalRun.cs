using Microsoft.Win32.SafeHandles;

namespace FastBroker.Journal;

/// <summary>
/// A contiguous run of whole records in one segment, in journal format (8-byte aligned, padding included), as a
/// span over the mapping and as (file handle, file position, length) for <c>sendfile</c>. Parse it with
/// <see cref="JournalRecord.TryParse"/>. Valid until the next call on the reader that returned it.
/// </summary>
public readonly ref struct JournalRun
{
    internal JournalRun(ReadOnlySpan<byte> bytes, long firstOffset, int recordCount, SafeFileHandle fileHandle, long filePosition)
    {
        Bytes = bytes;
        FirstOffset = firstOffset;
        RecordCount = recordCount;
        FileHandle = fileHandle;
        FilePosition = filePosition;
    }

    /// <summary>The records' bytes, straight from the mapping.</summary>
    public ReadOnlySpan<byte> Bytes { get; }

    /// <summary>Offset of the first record.</summary>
    public long FirstOffset { get; }

    /// <summary>Number of records.</summary>
    public int RecordCount { get; }

    /// <summary>The segment file (for <c>sendfile</c>/<c>splice</c>); owned by the journal, do not dispose.</summary>
    public SafeFileHandle FileHandle { get; }

    /// <summary>Byte position of <see cref="Bytes"/> in the file.</summary>
    public long FilePosition { get; }

    /// <summary>Bytes in the run.</summary>
    public int Length => Bytes.Length;
}
