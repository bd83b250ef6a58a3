using System.Buffers.Binary;
using FastBroker.Journal;

namespace FastBroker.Engine;

/// <summary>
/// <c>producers.epochs</c> in the data directory: each producer id's newest epoch, written by
/// <see cref="Broker.InitProducer"/> whenever it gives an id a newer one (a new instance, or a resume above the newest
/// known) and by nothing else, before it answers, always durably (<see cref="DurableFile"/>: the temporary file
/// fsync'd, renamed, the directory fsync'd). So after a power loss it holds every epoch answered, even when
/// <c>producers.state</c>, whose periodic captures are renamed without an fsync (<see cref="ProducerCheckpoint"/>),
/// came back empty, missing or older; a restart (or a promoted standby, which receives the file like the other state
/// files) takes for each id the newest epoch of this file, <c>producers.state</c> and the records.
/// </summary>
/// <remarks>
/// <para>
/// Each write holds the registry's epochs at that moment (<see cref="ProducerRegistry.CaptureEpochs"/>): the ids it
/// still knows, so the file shrinks as the registry forgets expired producers and prunes the epochs of expired instances
/// that never wrote; a restart drops an id it no longer knows whose epoch was given longer than the expiry ago
/// (<see cref="ProducerRegistry.RestoreEpoch"/>), and the next write leaves it out.
/// </para>
/// <para>
/// Format (little-endian): magic "FBPE" (u32), version 1 (u32), the epoch count (u32), per id the id (u64) and its
/// newest epoch (u64), then the CRC32C of everything before it (u32).
/// </para>
/// </remarks>
internal sealed class ProducerEpochFile
{
    public const string FileName = "producers.epochs";

    private const uint Magic = 0x45504246; // "FBPE"
    private const uint Version = 1;

    private readonly string _path;
    private readonly Action<string>? _log;
    private readonly object _writeLock = new();
    private (ulong Producer, ulong Epoch)[] _epochs = new (ulong, ulong)[16];
    private byte[] _buffer = new byte[256];
    private long _changes; // Interlocked: one per Persist call
    private long _written; // under _writeLock: the changes the last write covers
    private bool _closed; // under _writeLock
    private string? _lastFailure; // under _writeLock

    public ProducerEpochFile(string dataDirectory, Action<string>? log)
    {
        _path = Path.Combine(dataDirectory, FileName);
        _log = log;
    }

    /// <summary>
    /// Any thread (<see cref="Broker.InitProducer"/>), once the registry gave an id a newer epoch: returns when the file
    /// holding it (and every other epoch the registry knows) is on disk. Calls that overlap share one write. Rare (one
    /// per producer instance started), so the disk flushes of each are affordable.
    /// </summary>
    /// <exception cref="BrokerException"><see cref="BrokerErrorCode.StorageError"/>: the file could not be written; <see cref="BrokerErrorCode.Closed"/>: the broker closed.</exception>
    public void Persist(ProducerRegistry producers)
    {
        var wanted = Interlocked.Increment(ref _changes);
        lock (_writeLock)
        {
            if (_written >= wanted)
            {
                return; // a write that began after this caller's change covered it
            }

            if (_closed)
            {
                throw new BrokerException(BrokerErrorCode.Closed, "the broker is closed: the producer epoch was not persisted");
            }

            var covers = Volatile.Read(ref _changes); // every change counted so far was given before: the capture holds it
            var length = Encode(producers.CaptureEpochs(ref _epochs));
            try
            {
                DurableFile.WriteAllBytes(_path, _buffer.AsSpan(0, length));
                _lastFailure = null;
            }
            catch (Exception ex) when (ex is IOException or UnauthorizedAccessException or JournalException)
            {
                // A full disk, say: the previous file stays whole. Logged once per cause; every new epoch tries again.
                var failure = $"{FileName}: cannot write it: {ex.Message}";
                if (failure != _lastFailure)
                {
                    _lastFailure = failure;
                    _log?.Invoke(failure);
                }

                throw new BrokerException(BrokerErrorCode.StorageError, $"the producer epoch could not be persisted: {ex.Message}");
            }

            _written = covers;
        }
    }

    /// <summary>At close: a later <see cref="Persist"/> throws <see cref="BrokerErrorCode.Closed"/> instead of writing.</summary>
    public void Close()
    {
        lock (_writeLock)
        {
            _closed = true;
        }
    }

    /// <summary>
    /// Reads the file: each id's newest epoch when it was written, unchecked (it can only fence). Absent: nothing, no
    /// problem; unreadable or damaged: nothing, and <paramref name="problem"/> says so.
    /// </summary>
    public static List<(ulong Producer, ulong Epoch)> Load(string dataDirectory, out string? problem)
    {
        problem = null;
        var epochs = new List<(ulong, ulong)>();
        byte[] bytes;
        try
        {
            bytes = File.ReadAllBytes(Path.Combine(dataDirectory, FileName));
        }
        catch (FileNotFoundException)
        {
            return epochs;
        }
        catch (IOException ex)
        {
            problem = $"{FileName}: cannot read it ({ex.Message}): producer epochs are known from producers.state and the records only";
            return epochs;
        }

        var span = bytes.AsSpan();
        var count = span.Length < 16 ? 0 : BinaryPrimitives.ReadUInt32LittleEndian(span[8..]);
        if (span.Length < 16 || BinaryPrimitives.ReadUInt32LittleEndian(span) != Magic || BinaryPrimitives.ReadUInt32LittleEndian(span[4..]) != Version
            || (long)count * 16 != span.Length - 16 || Crc32C.Compute(span[..^4]) != BinaryPrimitives.ReadUInt32LittleEndian(span[^4..]))
        {
            problem = $"{FileName}: damaged or of an unknown version ({span.Length} bytes): ignored, producer epochs are known from producers.state and the records only";
            return epochs;
        }

        for (var at = 12; at < span.Length - 4; at += 16)
        {
            epochs.Add((BinaryPrimitives.ReadUInt64LittleEndian(span[at..]), BinaryPrimitives.ReadUInt64LittleEndian(span[(at + 8)..])));
        }

        return epochs;
    }

    private int Encode(int count)
    {
        var need = 16 + (16 * count);
        if (_buffer.Length < need)
        {
            _buffer = new byte[Math.Max(need, _buffer.Length * 2)];
        }

        var span = _buffer.AsSpan();
        BinaryPrimitives.WriteUInt32LittleEndian(span, Magic);
        BinaryPrimitives.WriteUInt32LittleEndian(span[4..], Version);
        BinaryPrimitives.WriteUInt32LittleEndian(span[8..], (uint)count);
        var at = 12;
        for (var i = 0; i < count; i++, at += 16)
        {
            BinaryPrimitives.WriteUInt64LittleEndian(span[at..], _epochs[i].Producer);
            BinaryPrimitives.WriteUInt64LittleEndian(span[(at + 8)..], _epochs[i].Epoch);
        }

        BinaryPrimitives.WriteUInt32LittleEndian(span[at..], Crc32C.Compute(span[..at]));
        return at + 4;
    }
}
