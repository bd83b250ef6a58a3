using System.Runtime.InteropServices;
using FastBroker.Storage;
using Microsoft.Win32.SafeHandles;

namespace FastBroker.Journal.Internal;

// The segment's file: creating, adopting and opening it, mapping it, and scanning one whose header cannot be read.
internal sealed unsafe partial class Segment
{
    /// <summary>Creates, pre-allocates (the disk-full check), maps and stamps a new segment.</summary>
    internal static Segment Create(string path, in SegmentHeader header, int indexCapacity)
    {
        var segment = CreateBlank(path, header.SegmentSize, indexCapacity);
        segment.Stamp(header);
        return segment;
    }

    /// <summary>
    /// A spare segment for the flusher to prepare ahead of the writer: allocated and mapped under a temporary
    /// name, no header yet. <see cref="Adopt"/> names and stamps it when the writer rolls.
    /// </summary>
    /// <exception cref="JournalFullException">No disk space for the segment.</exception>
    /// <exception cref="JournalException"><see cref="JournalErrorCode.IoError"/>: the file cannot be created or mapped;
    /// the <see cref="IOException"/> inside has the errno as its HResult (<see cref="ResourceShortage"/> tells a
    /// shortage, e.g. out of descriptors, from the rest). Nothing is left behind.</exception>
    internal static Segment CreateBlank(string path, int size, int indexCapacity)
    {
        var blank = new SegmentHeader(0, -1, size, 0);
        SafeFileHandle handle;
        try
        {
            handle = File.OpenHandle(path, FileMode.CreateNew, FileAccess.ReadWrite, FileShare.Read);
        }
        catch (IOException e) when (IsNoSpace(e))
        {
            throw new JournalFullException(path, size, e.Message);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw CannotCreate(path, e);
        }

        try
        {
            // The segment holds its descriptor while it lives: one of the last ones the process keeps in reserve is
            // refused (EMFILE), as a state file and a connection are, so that a journal rolling at the limit refuses
            // the append instead of taking the descriptors the runtime needs to go on.
            ResourceShortage.ThrowIfInReserve(handle, path);
            var first = Math.Min(size, AllocationUnit);
            var native = TryAllocateNative(handle, path, 0, first); // the header page, and a full disk fails here
            if (!native)
            {
                Allocate(handle, path, 0, size); // no native fallocate: the whole file now, nobody else has it yet
                first = size;
            }

            RandomAccess.SetLength(handle, size);
            var mapping = Map(handle, (nuint)size, writable: true, path);
            var segment = new Segment(path, handle, mapping, (nuint)size, blank, writable: true, new SparseIndex(indexCapacity))
            {
                NeedsDirectorySync = true,
            };
            segment._allocatedTo = first;
            segment._writtenFrom = SegmentHeader.Size; // every record in it is written by this process
            segment.AdviseAppendOnly(0); // a blank segment is only ever appended to (and its spare populated)
            return segment;
        }
        catch (Exception e)
        {
            handle.Dispose();
            TryDelete(path);
            if (e is IOException or UnauthorizedAccessException)
            {
                throw CannotCreate(path, e);
            }

            throw;
        }
    }

    /// <summary>A segment that cannot be created, with the cause (its errno as the HResult) inside.</summary>
    private static JournalException CannotCreate(string path, Exception cause) =>
        new(JournalErrorCode.IoError, $"segment '{path}' cannot be created: {cause.Message}", cause);

    /// <summary>The end of the last data extent (<c>SEEK_DATA</c>/<c>SEEK_HOLE</c>), or <paramref name="length"/> when unknown.</summary>
    private static long DataEnd(SafeFileHandle handle, long length)
    {
        var fd = (int)handle.DangerousGetHandle();
        long end = 0, position = 0;
        while (position < length)
        {
            var data = Native.Lseek(fd, position, Native.SeekData);
            if (data < 0)
            {
                return Marshal.GetLastPInvokeError() == Native.ENxio ? end : length; // ENXIO: no data after position
            }

            var hole = Native.Lseek(fd, data, Native.SeekHole);
            if (hole <= data)
            {
                return length;
            }

            end = position = hole;
        }

        return Math.Min(end, length);
    }

    /// <summary>
    /// Renames a prepared blank segment to its final name and writes its header (writer thread, at roll). With
    /// <paramref name="replace"/>, the rename replaces the file there (an empty segment replaced at roll) in one step.
    /// </summary>
    internal void Adopt(string path, in SegmentHeader header, bool replace = false)
    {
        File.Move(FilePath, path, overwrite: replace);
        FilePath = path;
        Stamp(header);
    }

    private void Stamp(in SegmentHeader header)
    {
        BaseOffset = header.BaseOffset;
        Epoch = header.Epoch;
        CreatedUnixMs = header.CreatedUnixMs;
        header.Write(WritableBytes);
    }

    /// <summary>
    /// Opens an existing segment. Returns null (file left untouched) when the identity header is invalid;
    /// <paramref name="error"/> is null when the header bytes are all zero (a creation that never finished).
    /// A writable open restores a truncated file to its full size (the missing bytes read as zero).
    /// </summary>
    internal static Segment? Open(string path, bool writable, int indexCapacity, out string? error, out bool unsupported)
    {
        var handle = File.OpenHandle(path, FileMode.Open, writable ? FileAccess.ReadWrite : FileAccess.Read, FileShare.ReadWrite);
        try
        {
            var length = RandomAccess.GetLength(handle);
            Span<byte> headerBytes = stackalloc byte[SegmentHeader.Size];
            var read = RandomAccess.Read(handle, headerBytes, 0);
            if (!SegmentHeader.TryRead(headerBytes.Slice(0, read), out var header, out error, out unsupported))
            {
                if (error is null && length > SegmentHeader.Size && !IsAllZero(handle, length))
                {
                    error = "segment header is blank but the file holds data";
                }

                handle.Dispose();
                return null;
            }

            var mapLength = (long)header.SegmentSize;
            if (length < header.SegmentSize)
            {
                if (writable)
                {
                    RandomAccess.SetLength(handle, header.SegmentSize); // blocks come with AllocateTo, before any write
                }
                else
                {
                    mapLength = length;
                }
            }

            var mapping = Map(handle, (nuint)mapLength, writable, path);
            return new Segment(path, handle, mapping, (nuint)mapLength, header, writable, new SparseIndex(indexCapacity));
        }
        catch
        {
            handle.Dispose();
            throw;
        }
    }

    /// <summary>
    /// The valid records from the first record position of a file whose header cannot be read (a blank identity
    /// block), taking <paramref name="baseOffset"/> from its name; the scan stops at the first invalid record. For
    /// recovery's report of what it removes and verify's count of it, nothing else.
    /// </summary>
    internal static SegmentScanner.Result ScanWithoutHeader(string path, long baseOffset)
    {
        var none = new SegmentScanner.Result { EndPosition = SegmentHeader.Size };
        using var handle = File.OpenHandle(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite);
        var length = Math.Min(RandomAccess.GetLength(handle), 1L << 30);
        if (length <= SegmentHeader.Size)
        {
            return none;
        }

        var mapping = Native.Mmap(0, (nuint)length, Native.ProtRead, Native.MapShared, (int)handle.DangerousGetHandle(), 0);
        if (mapping == -1)
        {
            return none;
        }

        try
        {
            var bytes = new ReadOnlySpan<byte>((void*)mapping, (int)Math.Min(length, DataEnd(handle, length)));
            return SegmentScanner.Scan(bytes, SegmentHeader.Size, bytes.Length, baseOffset, 0, verifyCrc: true, null, int.MaxValue);
        }
        finally
        {
            _ = Native.Munmap(mapping, (nuint)length);
        }
    }

    /// <summary>Huge (2 MiB) file pages where the kernel and filesystem support them; see <see cref="Map"/>.</summary>
    internal static bool UseHugePages { get; set; } = true;

    /// <summary>
    /// Maps the file shared. The mapping is placed at a 2 MiB-aligned address with <c>MADV_HUGEPAGE</c> so that a
    /// kernel with large page-cache folios (ext4, xfs, tmpfs on 6.x) maps it with 2 MiB entries: one fault and one
    /// TLB entry per 2 MiB instead of 512. On this project's VMs the first write to each 4 KiB page costs
    /// microseconds (64 MiB written at 0.5 GB/s with 4 KiB pages, 4-8 GB/s with 2 MiB ones). Elsewhere it is
    /// a harmless hint.
    /// </summary>
    private static nint Map(SafeFileHandle handle, nuint length, bool writable, string path)
    {
        const nint Huge = 2 << 20;
        var prot = Native.ProtRead | (writable ? Native.ProtWrite : 0);
        var fd = (int)handle.DangerousGetHandle();
        nint mapping = -1;
        if (UseHugePages && length >= (nuint)Huge)
        {
            var reserve = Native.Mmap(0, length + (nuint)Huge, Native.ProtNone, Native.MapPrivate | Native.MapAnonymous, -1, 0);
            if (reserve != -1)
            {
                var aligned = (reserve + Huge - 1) & ~(Huge - 1);
                mapping = Native.Mmap(aligned, length, prot, Native.MapShared | Native.MapFixed, fd, 0);
                if (mapping == -1)
                {
                    _ = Native.Munmap(reserve, length + (nuint)Huge);
                }
                else
                {
                    if (aligned > reserve)
                    {
                        _ = Native.Munmap(reserve, (nuint)(aligned - reserve));
                    }

                    var tail = (reserve + (nint)length + Huge) - (aligned + (nint)length);
                    if (tail > 0)
                    {
                        _ = Native.Munmap(aligned + (nint)length, (nuint)tail);
                    }

                    _ = Native.Madvise(mapping, length, Native.MadvHugePage);
                }
            }
        }

        if (mapping == -1)
        {
            mapping = Native.Mmap(0, length, prot, Native.MapShared, fd, 0);
        }

        if (mapping == -1)
        {
            var errno = Marshal.GetLastPInvokeError();
            // The errno goes inside as the HResult, as .NET gives it an IOException: ENOMEM is a shortage, not damage.
            throw new JournalException(JournalErrorCode.IoError, $"mmap of '{path}' ({length} bytes) failed: {Native.Describe(errno)}", Native.Cause(errno));
        }

        return mapping;
    }

    private static bool IsAllZero(SafeFileHandle handle, long length)
    {
        var buffer = new byte[1 << 16];
        for (long pos = 0; pos < length;)
        {
            var n = RandomAccess.Read(handle, buffer, pos);
            if (n <= 0)
            {
                break;
            }

            if (buffer.AsSpan(0, n).IndexOfAnyExcept((byte)0) >= 0)
            {
                return false;
            }

            pos += n;
        }

        return true;
    }

    internal static bool IsNoSpace(IOException e) =>
        e.HResult == Native.ENoSpc || e.Message.Contains("No space", StringComparison.OrdinalIgnoreCase);

    internal static void TryDelete(string path)
    {
        try
        {
            File.Delete(path);
        }
        catch (IOException)
        {
        }
        catch (UnauthorizedAccessException)
        {
        }
    }
}
