using System.IO.MemoryMappedFiles;
using System.Runtime.CompilerServices;

namespace FastBroker.Engine;

/// <summary>
/// A small fixed-size file mapped into memory, used for broker state that must survive <c>kill -9</c> without a
/// syscall per update: a store into the mapping is in the page cache at once, so only an OS crash (not a process
/// crash) can lose it, and <see cref="Flush"/> covers that when the durability asks for it.
/// </summary>
/// <remarks>Aligned 8-byte stores are atomic on x64 and arm64, so a reader after a crash sees either the old or the
/// new value of a slot, never a torn one. Not thread-safe against <see cref="Dispose"/>: owners serialize their
/// accesses with it (under their lock); an access after it throws <see cref="ObjectDisposedException"/> rather than
/// touching the unmapped pages (a SIGSEGV that kills the process).</remarks>
internal sealed unsafe class MappedStateFile : IDisposable
{
    private readonly MemoryMappedFile _map;
    private readonly MemoryMappedViewAccessor _view;
    private readonly byte* _base;
    private bool _disposed;

    private MappedStateFile(string path, MemoryMappedFile map, MemoryMappedViewAccessor view, long length, bool created)
    {
        Path = path;
        _map = map;
        _view = view;
        Length = length;
        Created = created;
        byte* p = null;
        _view.SafeMemoryMappedViewHandle.AcquirePointer(ref p);
        _base = p + _view.PointerOffset;
    }

    /// <summary>The file's path.</summary>
    public string Path { get; }

    /// <summary>Mapped length in bytes.</summary>
    public long Length { get; }

    /// <summary>True when the file did not exist and was created zero-filled.</summary>
    public bool Created { get; }

    /// <summary>Opens or creates <paramref name="path"/> with exactly <paramref name="length"/> bytes (a multiple of 8).</summary>
    public static MappedStateFile Open(string path, long length)
    {
        if (length <= 0 || length % 8 != 0)
        {
            throw new ArgumentOutOfRangeException(nameof(length), "length must be a positive multiple of 8");
        }

        Directory.CreateDirectory(System.IO.Path.GetDirectoryName(System.IO.Path.GetFullPath(path))!);
        var created = !File.Exists(path);
        using (var fs = new FileStream(path, FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.ReadWrite))
        {
            if (fs.Length != length)
            {
                if (!created && fs.Length > length)
                {
                    throw new InvalidDataException($"state file {path} is {fs.Length} bytes, expected {length}");
                }

                // Writing real zeros (not a sparse extend) so a full disk fails here, not as SIGBUS on first store.
                fs.Seek(0, SeekOrigin.End);
                var zeros = new byte[64 * 1024];
                var remaining = length - fs.Length;
                while (remaining > 0)
                {
                    var n = (int)Math.Min(zeros.Length, remaining);
                    fs.Write(zeros, 0, n);
                    remaining -= n;
                }

                fs.Flush(flushToDisk: true);
            }
        }

        var map = MemoryMappedFile.CreateFromFile(path, FileMode.Open, mapName: null, length, MemoryMappedFileAccess.ReadWrite);
        var view = map.CreateViewAccessor(0, length, MemoryMappedFileAccess.ReadWrite);
        return new MappedStateFile(path, map, view, length, created);
    }

    /// <summary>The 8-byte slot at <paramref name="index"/> (byte offset index × 8).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public ref long Slot(long index)
    {
        if (_disposed)
        {
            ThrowDisposed();
        }

        return ref Unsafe.AsRef<long>(_base + (index * 8));
    }

    /// <summary>Reads a slot with acquire semantics.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public long Read(long index) => Volatile.Read(ref Slot(index));

    /// <summary>Writes a slot with release semantics (visible to a reader of the file once the store retires).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public void Write(long index, long value) => Volatile.Write(ref Slot(index), value);

    /// <summary>Bytes of the mapping as a span (for small headers and names).</summary>
    public Span<byte> Bytes(long offset, int length)
    {
        if (offset < 0 || length < 0 || offset + length > Length)
        {
            throw new ArgumentOutOfRangeException(nameof(offset));
        }

        if (_disposed)
        {
            ThrowDisposed();
        }

        return new Span<byte>(_base + offset, length);
    }

    private static void ThrowDisposed() => throw new ObjectDisposedException(nameof(MappedStateFile));

    /// <summary>Forces the mapping to disk (msync): needed only against OS crashes and power loss.</summary>
    public void Flush() => _view.Flush();

    /// <inheritdoc />
    public void Dispose()
    {
        if (_disposed)
        {
            return;
        }

        _disposed = true;
        _view.SafeMemoryMappedViewHandle.ReleasePointer();
        _view.Dispose();
        _map.Dispose();
    }
}
