using System.Buffers.Binary;
using FastBroker.Journal;
using FastBroker.Storage;

namespace FastBroker.Engine;

/// <summary>
/// <c>producers.epochs</c> in the data directory: each producer id's newest epoch and when the id was last in use,
/// written by <see cref="Broker.InitProducer"/> whenever it gives an id a newer one (a new instance, or a resume above
/// the newest known) before it answers, and when the broker opens (after recovery) and closes, always durably
/// (<see cref="DurableFile"/>: the temporary file fsync'd, renamed, the directory fsync'd), and by the broker's timer
/// once its last write is <see cref="MaxRefreshMs"/> old (<see cref="Refresh"/>). So after a power
/// loss it holds every epoch answered, even when <c>producers.state</c>, whose periodic captures are renamed without an
/// fsync (<see cref="ProducerCheckpoint"/>), came back empty, missing or older; a restart (or a promoted standby, which
/// receives the file like the other state files) takes for each id the newest epoch of this file,
/// <c>producers.state</c> and the records, also with <see cref="BrokerOptions.ProducerRecoveryRecords"/> 0.
/// </summary>
/// <remarks>
/// <para>
/// Each write holds the registry's epochs at that moment (<see cref="ProducerRegistry.CaptureEpochs"/>): every id whose
/// epoch the registry keeps, those whose producer the sweep forgot included, for
/// <see cref="BrokerOptions.ProducerEpochRetention"/> (at least the expiry) after the id's last use (its newest write or
/// INIT_PRODUCER). So the file is compacted, never emptied: each write leaves out the ids past that retention, which a
/// restart drops too (<see cref="ProducerRegistry.RestoreEpoch"/>, by the time the file gives), and the registry drops
/// those without a window with it (<see cref="ProducerRegistry.CaptureEpochs"/>), so the running broker, a restart and a
/// promoted standby forget the same ids.
/// </para>
/// <para>
/// Format (little-endian): magic "FBPE" (u32), version 2 (u32), the epoch count (u32), per id the id (u64), its newest
/// epoch (u64) and the Unix ms of its last use (i64), then the CRC32C of everything before it (u32). Version 1 (no last
/// use: 16 bytes an id) is still read, each id taken as in use at the open.
/// </para>
/// </remarks>
internal sealed class ProducerEpochFile
{
    public const string FileName = "producers.epochs";

    private const uint Magic = 0x45504246; // "FBPE"
    private const uint Version = 2;

    /// <summary>The longest the file goes without a refresh while producers write (<see cref="Refresh"/>): an hour, or a quarter of a shorter epoch retention.</summary>
    public const long MaxRefreshMs = 60 * 60 * 1000;

    private readonly string _path;
    private readonly Action<string>? _log;
    private readonly long _refreshMs;
    private readonly TimeProvider _clock;
    private readonly object _writeLock = new();
    private (ulong Producer, ulong Epoch, long Seen)[] _epochs = new (ulong, ulong, long)[16];
    private byte[] _buffer = new byte[256];
    private long _changes; // Interlocked: one per Persist call
    private long _written; // under _writeLock: the changes the last write covers
    private bool _closed; // under _writeLock
    private string? _lastFailure; // under _writeLock
    private long _refreshFrom = long.MinValue; // Volatile: _clock's timestamp of the last write that succeeded or refresh tried; MinValue = none

    /// <param name="dataDirectory">Where the file is.</param>
    /// <param name="log">Where a failed write is said (once per cause).</param>
    /// <param name="retentionMs">The epoch retention: refreshed at least every quarter of it.</param>
    /// <param name="clock">What <see cref="Refresh"/> measures the interval with (<see cref="BrokerOptions.StampClock"/>; the system's by default).</param>
    public ProducerEpochFile(string dataDirectory, Action<string>? log, long retentionMs = long.MaxValue, TimeProvider? clock = null)
    {
        _path = Path.Combine(dataDirectory, FileName);
        _log = log;
        _refreshMs = Math.Min(MaxRefreshMs, Math.Max(1, retentionMs / 4));
        _clock = clock ?? TimeProvider.System;
    }

    /// <summary>
    /// How often the broker's timer looks whether a <see cref="Refresh"/> is due: a quarter of the refresh interval (15
    /// minutes by default), so the file trails by at most 1.25 intervals, and an idle broker wakes that rarely for it.
    /// </summary>
    public TimeSpan RefreshCheckPeriod => TimeSpan.FromMilliseconds(Math.Max(1, _refreshMs / 4));

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
            var length = Encode(producers.CaptureEpochs(ref _epochs, _clock.GetUtcNow().ToUnixTimeMilliseconds()));
            try
            {
                DurableFile.WriteAllBytes(_path, _buffer.AsSpan(0, length));
                _lastFailure = null;
                Volatile.Write(ref _refreshFrom, _clock.GetTimestamp());
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

    /// <summary>
    /// The broker's timer (a pool thread, every <see cref="RefreshCheckPeriod"/> or more often): rewrites the file when its
    /// last write is an hour old (<see cref="MaxRefreshMs"/>; a quarter of the epoch retention if that is less), whether
    /// or not the journaler captures <c>producers.state</c> meanwhile (it does every 8,192 records only), so the last use
    /// it gives each id trails the registry's by at most about that (a restart ages ids without a window by it). A
    /// failure is logged, as <see cref="Persist"/> logs it, and tried again an interval later. Ticks that overlap write
    /// once. Each refresh also forgets the ids past the epoch retention (<see cref="ProducerRegistry.CaptureEpochs"/>),
    /// however few are kept and whether or not anything is published. On a pair the replicator's heartbeat check finds
    /// the file changed (its length and time) and sends it; no state version is raised for it.
    /// </summary>
    public void Refresh(ProducerRegistry producers)
    {
        if (!RefreshDue())
        {
            return;
        }

        lock (_writeLock)
        {
            if (RefreshDue())
            {
                Volatile.Write(ref _refreshFrom, _clock.GetTimestamp()); // a failed write waits an interval too
                TryPersist(producers); // the same lock, taken again by Persist
            }
        }
    }

    private bool RefreshDue()
    {
        var from = Volatile.Read(ref _refreshFrom);
        return from == long.MinValue || _clock.GetElapsedTime(from).TotalMilliseconds >= _refreshMs;
    }

    /// <summary><see cref="Persist"/> when the broker opens and closes, and for <see cref="Refresh"/>: a failure is logged (once per cause), not thrown.</summary>
    public void TryPersist(ProducerRegistry producers)
    {
        try
        {
            Persist(producers);
        }
        catch (BrokerException)
        {
            // Logged by Persist (a write failure), or the broker closed: the file as it was stays.
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
    /// Reads the file: each id's newest epoch and last use (Unix ms; <paramref name="now"/> in a version 1 file, which has
    /// none) when it was written, unchecked (it can only fence). Absent: nothing, no problem; damaged: nothing, and
    /// <paramref name="problem"/> says so. Unreadable (a read error, a directory in its place, no permission): the open
    /// is refused. The file alone holds an epoch given to an instance that has not written yet (the captures of
    /// <c>producers.state</c> between the open and the close are not synced, and come every 8,192 records only), so an
    /// open without it would let the instance that one replaced resume and publish; and the open's own write of the file
    /// would replace it, losing its epochs for good, where the file itself may be whole (its permissions changed, say).
    /// </summary>
    /// <exception cref="BrokerException">
    /// <see cref="BrokerErrorCode.StorageError"/>: the file cannot be read, naming it and the cause, and what the
    /// operator can do; <see cref="BrokerErrorCode.ResourceExhausted"/> when the system ran short (out of descriptors,
    /// say; <see cref="ResourceShortage"/>).
    /// </exception>
    public static List<(ulong Producer, ulong Epoch, long Seen)> Load(string dataDirectory, long now, out string? problem)
    {
        problem = null;
        var epochs = new List<(ulong, ulong, long)>();
        var path = Path.Combine(dataDirectory, FileName);
        byte[] bytes;
        try
        {
            bytes = File.ReadAllBytes(path);
        }
        catch (FileNotFoundException)
        {
            return epochs;
        }
        catch (Exception ex) when (ResourceShortage.Describe(ex) is { } shortage)
        {
            throw new BrokerException(BrokerErrorCode.ResourceExhausted, $"{FileName}: '{path}' cannot be read now ({shortage}: {ex.Message}); try again later", ex);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            // Not ignored as a damaged file is: its epochs may be whole, and they alone fence an instance replaced by one
            // that has not written yet.
            throw new BrokerException(BrokerErrorCode.StorageError, $"{FileName}: '{path}' cannot be read ({ex.Message}): it holds the newest epoch given to each producer id, "
                + "which alone fences an instance replaced by one that has not written yet, so the broker is not opened without it (a replaced instance would not be fenced). "
                + "Make it readable again, or remove it to open with the epochs of producers.state and the records only", ex);
        }

        var span = bytes.AsSpan();
        var version = span.Length < 16 ? 0 : BinaryPrimitives.ReadUInt32LittleEndian(span[4..]);
        var entry = version == 1 ? 16 : 24;
        var count = span.Length < 16 ? 0 : BinaryPrimitives.ReadUInt32LittleEndian(span[8..]);
        if (span.Length < 16 || BinaryPrimitives.ReadUInt32LittleEndian(span) != Magic || version is not (1 or Version)
            || (long)count * entry != span.Length - 16 || Crc32C.Compute(span[..^4]) != BinaryPrimitives.ReadUInt32LittleEndian(span[^4..]))
        {
            problem = $"{FileName}: damaged or of an unknown version ({span.Length} bytes): ignored, producer epochs are known from producers.state and the records only";
            return epochs;
        }

        for (var at = 12; at < span.Length - 4; at += entry)
        {
            var seen = entry == 24 ? BinaryPrimitives.ReadInt64LittleEndian(span[(at + 16)..]) : now;
            epochs.Add((BinaryPrimitives.ReadUInt64LittleEndian(span[at..]), BinaryPrimitives.ReadUInt64LittleEndian(span[(at + 8)..]), seen));
        }

        return epochs;
    }

    private int Encode(int count)
    {
        var need = 16 + (24 * count);
        if (_buffer.Length < need)
        {
            _buffer = new byte[Math.Max(need, _buffer.Length * 2)];
        }

        var span = _buffer.AsSpan();
        BinaryPrimitives.WriteUInt32LittleEndian(span, Magic);
        BinaryPrimitives.WriteUInt32LittleEndian(span[4..], Version);
        BinaryPrimitives.WriteUInt32LittleEndian(span[8..], (uint)count);
        var at = 12;
        for (var i = 0; i < count; i++, at += 24)
        {
            BinaryPrimitives.WriteUInt64LittleEndian(span[at..], _epochs[i].Producer);
            BinaryPrimitives.WriteUInt64LittleEndian(span[(at + 8)..], _epochs[i].Epoch);
            BinaryPrimitives.WriteInt64LittleEndian(span[(at + 16)..], _epochs[i].Seen);
        }

        BinaryPrimitives.WriteUInt32LittleEndian(span[at..], Crc32C.Compute(span[..at]));
        return at + 4;
    }
}
