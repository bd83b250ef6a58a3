using System.Buffers.Binary;
using System.Text;
using FastBroker.Journal;

namespace FastBroker.Engine;

/// <summary>
/// <c>producers.state</c> in the data directory: every idempotent producer's highest stored sequence and where that
/// record is (topic, offset), so that a restart (or a promoted standby, which receives the file like the other state
/// files) knows producers whose records are older than the rescan of each topic's newest records. Without it, a
/// producer whose last records were pushed out of that rescan by other producers' traffic was unknown after a restart,
/// and its retry of a stored message was stored a second time.
/// </summary>
/// <remarks>
/// <para>
/// The journaler captures the registry (into arrays it reuses: nothing allocated per capture) after every
/// <see cref="Interval"/> records it wrote, and a pool thread writes the capture (a temporary file, then a rename: the
/// file is always whole). The broker writes one at open, after recovery, and one at close. Each capture also takes its
/// capture point: every persistent topic's next offset then (every record below it is in the capture), and the open
/// rescans each topic from there (<see cref="RescanLimit"/> records at most), so every record written after the
/// capture on disk lies within the rescan however far the file trails the journal (a standby's copy, sent at the
/// primary's heartbeats, may trail by far more than <see cref="Interval"/>). A file without capture points (version 5
/// or older) trails a restarted broker's own journal by at most <see cref="Interval"/> records plus one capture being
/// written, within the rescan of <see cref="BrokerOptions.ProducerRecoveryRecords"/> newest records of its topic, which
/// is at least 4 × <see cref="Interval"/> (<see cref="BrokerOptions.MinProducerRecoveryRecords"/>, enforced by
/// <see cref="BrokerOptions.Validate"/>; 0 reads neither the rescan nor the file's entries, only its epochs). The
/// rescan finds those, the file vouches for everything before.
/// </para>
/// <para>
/// Each entry is checked against the journal when it is loaded: the record at (topic, offset) must still carry that
/// producer and sequence. An entry that does not match (the journal was cut after a failover or lost its unsynced tail,
/// or the file came from a primary ahead of this standby's copy) falls back to the entry's previous place: the producer's
/// highest sequence and its record's place as the capture before the one that first saw the newest took them (kept
/// beside it until the producer's entry changes again). Every record the producer wrote after that capture lies within
/// the rescan of a journal that holds the previous record but lacks the newest (the two captures are at most one
/// capture interval and one write apart, as the rescan's bound above allows), so a journal that holds the previous
/// record vouches with it as with the newest: a standby promoted before its copy received a producer's newest record
/// still refuses that producer's retry of a stored record beyond the rescan. An entry neither of whose records matches
/// is ignored, so the file can only make the broker refuse an unknown retry ("older than the oldest sequence known"),
/// never confirm one it does not hold.
/// </para>
/// <para>
/// The file also keeps the newest producer epoch of each id with the id's last use (<see cref="ProducerRegistry.CaptureEpochs"/>),
/// so a restart fences the older instances even when the new one has not written yet (no record carries its epoch),
/// for the epoch retention after that use, as <see cref="ProducerEpochFile"/> gives it. The writes at
/// open and close are durable (<see cref="DurableFile"/>: flushed, renamed, the directory synced); the journaler's
/// periodic captures are renamed over it without a disk flush (see <see cref="Write"/>), so after a power loss it may
/// hold older epochs or none: the epochs <see cref="Broker.InitProducer"/> answers are also in their own file, written
/// only durably and only when an epoch is given (<see cref="ProducerEpochFile"/>), and a restart takes the newest of
/// both. An epoch cannot be checked against the journal; it can only fence.
/// </para>
/// Format, little-endian: "FBPS", version 6, count (u32), then per producer id (u64), highest sequence (u64), offset
/// (i64), newest write (i64 Unix ms: a restart ages the producer by it, as the running broker's sweep does), the
/// previous place's sequence (u64) and offset (i64, -1: none), topic name length (u16) and UTF-8 name, the previous
/// place's topic name length (u16, 0 with none) and UTF-8 name; then the epoch count (u32) and per id with an epoch the id (u64), its newest epoch (u64)
/// and the Unix ms of the id's last use (i64: its newest write or INIT_PRODUCER; a restart that knows the id from this
/// file alone keeps the epoch for <see cref="BrokerOptions.ProducerEpochRetention"/> after it); then the capture points'
/// count (u32, u32.MaxValue: not known) and per persistent topic its next offset (i64), name length (u16) and UTF-8
/// name; then the CRC32C of everything before it (u32). Versions 1 (no newest write, no epochs), 2 (no epochs), 3
/// (epochs without last use: each taken as last used when it was given, the Unix ms an epoch is at least), 4 (no
/// previous place) and 5 (no capture points) are still read: version 1's producers are aged by their highest
/// sequence's record.
/// </remarks>
internal sealed class ProducerCheckpoint : IThreadPoolWorkItem
{
    /// <summary>Records written between two captures.</summary>
    public const int Interval = 8192;

    public const string FileName = "producers.state";

    private const uint Magic = 0x53504246; // "FBPS"
    private const uint Version = 6;

    /// <summary>
    /// The most records of one topic the open rescans (or <see cref="BrokerOptions.ProducerRecoveryRecords"/> if larger),
    /// however far behind the topic's journal end the capture point is.
    /// </summary>
    public const int RescanLimit = 1 << 24;

    private readonly string _path;
    private readonly object _writeLock = new();
    private readonly Action<string>? _log;
    private ProducerRegistry.Entry[] _capture = new ProducerRegistry.Entry[16];
    private int _captured;
    private (ulong Producer, ulong Epoch, long Seen)[] _epochs = new (ulong, ulong, long)[16];
    private ProducerRegistry? _registry; // the one whose capture is queued (its epochs are taken when the file is written)
    private byte[] _buffer = new byte[4096];
    private int _writing; // 1 while a capture waits for or is in its write
    private bool _closed; // under _writeLock
    private string? _lastFailure;
    private int _epochCount; // under _writeLock: how many of _epochs the file being written holds
    private readonly Func<IEnumerable<TopicState>>? _topics;
    private (string Topic, long Next)[] _points = new (string, long)[16];
    private int _pointCount = -1; // how many of _points the capture holds; -1: no topics given, capture points unknown

    /// <param name="dataDirectory">Where the file is.</param>
    /// <param name="log">Where a failed write is reported.</param>
    /// <param name="topics">
    /// The topics, whose journals' next offsets each capture takes as its capture points (null: the file names none, and
    /// the open rescans the fixed number of newest records).
    /// </param>
    public ProducerCheckpoint(string dataDirectory, Action<string>? log, Func<IEnumerable<TopicState>>? topics = null)
    {
        _path = Path.Combine(dataDirectory, FileName);
        _log = log;
        _topics = topics;
    }

    /// <summary>
    /// Journaler thread, once <see cref="Interval"/> records were written since the last capture:
    /// captures the registry and queues its write. False (nothing captured) while the previous capture is still being
    /// written: the journaler tries again with its next record.
    /// </summary>
    public bool TryCapture(ProducerRegistry producers)
    {
        if (Interlocked.CompareExchange(ref _writing, 1, 0) != 0)
        {
            return false;
        }

        _captured = producers.Capture(ref _capture);
        CapturePoints();
        _registry = producers;
        ThreadPool.UnsafeQueueUserWorkItem(this, preferLocal: false);
        return true;
    }

    /// <summary>Any thread, with the registry quiescent (at open, after recovery; at close, after the pipeline stopped).</summary>
    public void WriteNow(ProducerRegistry producers, bool closing)
    {
        var spin = new SpinWait();
        while (Interlocked.CompareExchange(ref _writing, 1, 0) != 0)
        {
            spin.SpinOnce(); // a capture's write in progress: it ends on its own
        }

        try
        {
            _captured = producers.Capture(ref _capture);
            CapturePoints();
            _registry = producers;
            Write(closing);
        }
        finally
        {
            Volatile.Write(ref _writing, 0);
        }
    }

    /// <summary>
    /// With the capture (the journaler's thread, or the registry quiescent): each persistent topic's next offset, where
    /// the capture was taken in its journal. The journaler registers each record it appends before it counts it, so
    /// every record below that offset is in the capture; the open rescans from there.
    /// </summary>
    private void CapturePoints()
    {
        if (_topics is null)
        {
            return;
        }

        var n = 0;
        foreach (var topic in _topics())
        {
            if (topic.Journal is not { } journal)
            {
                continue;
            }

            if (n == _points.Length)
            {
                Array.Resize(ref _points, n * 2);
            }

            _points[n++] = (topic.Name, journal.NextOffset);
        }

        _pointCount = n;
    }

    void IThreadPoolWorkItem.Execute()
    {
        try
        {
            Write(closing: false, durable: false);
        }
        finally
        {
            Volatile.Write(ref _writing, 0);
        }
    }

    /// <summary>
    /// Reads the file (absent or damaged: nothing) and returns each entry whose record the topics' journals still hold
    /// with that producer and sequence, through <paramref name="verify"/>, with the producer's newest write (that record's
    /// timestamp if later, or alone in a version 1 file) and the record's producer epoch; for an entry whose record they
    /// do not hold, its previous place instead if they hold that one's.
    /// </summary>
    public static List<(ulong Producer, ulong Highest, TopicState Topic, long Offset, long Timestamp, ulong Epoch)> Load(string dataDirectory, Func<string, long, (ulong Producer, ulong Sequence, ulong Epoch, long Timestamp)?> verify, Func<string, TopicState?> topicOf, out string? problem) =>
        Load(dataDirectory, verify, topicOf, out problem, out _);

    /// <summary>
    /// As the overload without <paramref name="epochs"/>, and also each id's newest epoch when the file was written (none
    /// in a version 1 or 2 file), unchecked (it can only fence), with the id's last use (Unix ms; in a version 3 file,
    /// which has none, the epoch itself: the Unix ms it was given at, at least).
    /// </summary>
    public static List<(ulong Producer, ulong Highest, TopicState Topic, long Offset, long Timestamp, ulong Epoch)> Load(string dataDirectory, Func<string, long, (ulong Producer, ulong Sequence, ulong Epoch, long Timestamp)?> verify, Func<string, TopicState?> topicOf, out string? problem, out List<(ulong Producer, ulong Epoch, long Seen)> epochs) =>
        Load(dataDirectory, verify, topicOf, out problem, out epochs, out _);

    /// <summary>
    /// As the overload without <paramref name="capturedAt"/>, and also where the capture was taken in each persistent
    /// topic's journal (its next offset then: every record below it is in the capture; a topic not named was created
    /// after it); null when the file does not say (none, damaged, version 1 to 5, or written without topics).
    /// </summary>
    public static List<(ulong Producer, ulong Highest, TopicState Topic, long Offset, long Timestamp, ulong Epoch)> Load(string dataDirectory, Func<string, long, (ulong Producer, ulong Sequence, ulong Epoch, long Timestamp)?> verify, Func<string, TopicState?> topicOf, out string? problem, out List<(ulong Producer, ulong Epoch, long Seen)> epochs, out Dictionary<string, long>? capturedAt)
    {
        problem = null;
        epochs = [];
        capturedAt = null;
        var result = new List<(ulong, ulong, TopicState, long, long, ulong)>();
        byte[] bytes;
        try
        {
            bytes = File.ReadAllBytes(Path.Combine(dataDirectory, FileName));
        }
        catch (FileNotFoundException)
        {
            return result;
        }
        catch (IOException ex)
        {
            problem = $"{FileName}: cannot read it ({ex.Message}): producers are known from the newest records only";
            return result;
        }

        var span = bytes.AsSpan();
        var version = span.Length < 16 ? 0 : BinaryPrimitives.ReadUInt32LittleEndian(span[4..]);
        if (span.Length < 16 || BinaryPrimitives.ReadUInt32LittleEndian(span) != Magic || version is not (1 or 2 or 3 or 4 or 5 or Version)
            || Crc32C.Compute(span[..^4]) != BinaryPrimitives.ReadUInt32LittleEndian(span[^4..]))
        {
            problem = $"{FileName}: damaged or of an unknown version ({span.Length} bytes): ignored, producers are known from the newest records only";
            return result;
        }

        var count = BinaryPrimitives.ReadUInt32LittleEndian(span[8..]);
        var at = 12;
        var end = span.Length - 4;
        var ignored = 0;
        var fromPrevious = 0;
        for (var i = 0u; i < count; i++)
        {
            var fixedLength = version switch { 1 => 26, < 5 => 34, _ => 50 };
            if (at + fixedLength > end)
            {
                problem = $"{FileName}: entry {i} of {count} runs past the end: ignored from there";
                break;
            }

            var id = BinaryPrimitives.ReadUInt64LittleEndian(span[at..]);
            var highest = BinaryPrimitives.ReadUInt64LittleEndian(span[(at + 8)..]);
            var offset = BinaryPrimitives.ReadInt64LittleEndian(span[(at + 16)..]);
            var lastWrite = version == 1 ? long.MinValue : BinaryPrimitives.ReadInt64LittleEndian(span[(at + 24)..]);
            var previousHighest = version >= 5 ? BinaryPrimitives.ReadUInt64LittleEndian(span[(at + 32)..]) : 0;
            var previousOffset = version >= 5 ? BinaryPrimitives.ReadInt64LittleEndian(span[(at + 40)..]) : -1;
            int nameLength = BinaryPrimitives.ReadUInt16LittleEndian(span[(at + fixedLength - 2)..]);
            at += fixedLength;
            if (at + nameLength > end)
            {
                problem = $"{FileName}: entry {i} of {count} runs past the end: ignored from there";
                break;
            }

            var name = Encoding.UTF8.GetString(span.Slice(at, nameLength));
            at += nameLength;
            var previousName = "";
            if (version >= 5)
            {
                int previousLength = at + 2 <= end ? BinaryPrimitives.ReadUInt16LittleEndian(span[at..]) : int.MaxValue;
                if (previousLength > end - at - 2)
                {
                    problem = $"{FileName}: entry {i} of {count} runs past the end: ignored from there";
                    break;
                }

                previousName = Encoding.UTF8.GetString(span.Slice(at + 2, previousLength));
                at += 2 + previousLength;
            }

            if (topicOf(name) is { } topic && verify(name, offset) is { } found && (found.Producer, found.Sequence) == (id, highest))
            {
                result.Add((id, highest, topic, offset, Math.Max(found.Timestamp, lastWrite), found.Epoch));
            }
            else if (previousOffset >= 0 && topicOf(previousName) is { } previousTopic && verify(previousName, previousOffset) is { } before
                && (before.Producer, before.Sequence) == (id, previousHighest))
            {
                // The newest record is missing (a standby's copy not holding it yet, say), the one the capture before held
                // is here: every record the producer wrote after that capture lies within the rescan (it trails the
                // newest capture's record by at most a capture interval), so it vouches as the newest would have.
                result.Add((id, previousHighest, previousTopic, previousOffset, Math.Max(before.Timestamp, lastWrite), before.Epoch));
                fromPrevious++;
            }
            else
            {
                ignored++;
            }
        }

        if (version >= 3 && problem is null)
        {
            var n = at + 4 <= end ? BinaryPrimitives.ReadUInt32LittleEndian(span[at..]) : uint.MaxValue;
            var entry = version == 3 ? 16 : 24;
            if (n == uint.MaxValue || (long)n * entry > end - at - 4)
            {
                problem = $"{FileName}: the producer epochs run past the end: ignored";
            }
            else
            {
                at += 4;
                for (var i = 0u; i < n; i++, at += entry)
                {
                    var epoch = BinaryPrimitives.ReadUInt64LittleEndian(span[(at + 8)..]);
                    var seen = entry == 24 ? BinaryPrimitives.ReadInt64LittleEndian(span[(at + 16)..]) : (long)Math.Min(epoch, long.MaxValue);
                    epochs.Add((BinaryPrimitives.ReadUInt64LittleEndian(span[at..]), epoch, seen));
                }

                if (version >= 6)
                {
                    capturedAt = ReadCapturePoints(span, at, end, out problem);
                }
            }
        }

        if (ignored + fromPrevious > 0 && problem is null)
        {
            problem = $"{FileName}: {ignored + fromPrevious} of {count} producers' newest records are not in this journal (cut, lost with an unsynced tail, or not yet copied): "
                + $"{fromPrevious} of them known from the record of their previous entry, which it holds, {ignored} from the newest records only";
        }

        return result;
    }

    /// <summary>The capture points (count, u32.MaxValue: unknown; per topic its next offset, name length, name).</summary>
    private static Dictionary<string, long>? ReadCapturePoints(ReadOnlySpan<byte> span, int at, int end, out string? problem)
    {
        const string pastEnd = FileName + ": the capture points run past the end: each topic's rescan is its newest records only";
        problem = null;
        if (at + 4 > end)
        {
            problem = pastEnd;
            return null;
        }

        var n = BinaryPrimitives.ReadUInt32LittleEndian(span[at..]);
        if (n == uint.MaxValue)
        {
            return null;
        }

        at += 4;
        var points = new Dictionary<string, long>(StringComparer.Ordinal);
        for (var i = 0u; i < n; i++)
        {
            int length = at + 10 <= end ? BinaryPrimitives.ReadUInt16LittleEndian(span[(at + 8)..]) : int.MaxValue;
            if (length > end - at - 10)
            {
                problem = pastEnd;
                return null;
            }

            points[Encoding.UTF8.GetString(span.Slice(at + 10, length))] = BinaryPrimitives.ReadInt64LittleEndian(span[at..]);
            at += 10 + length;
        }

        return points;
    }

    /// <summary>
    /// With <c>_writing</c> held: writes the capture and the registry's epochs (nothing once the broker's last file was
    /// written). <paramref name="durable"/> (open, close): flushed, renamed, the directory synced (<see cref="DurableFile"/>). The journaler's
    /// periodic captures are not: at millions of records a second they come hundreds of times a second, and a disk flush
    /// each would keep the disk busy under the journal's own group commits. They are renamed over the file whole, and
    /// hold every epoch the last durable write held. A flush before their rename would also break the rescan's bound: the
    /// file would trail the journal by <see cref="Interval"/> records plus twice what the journaler writes during one
    /// flush (the next capture waits for this write), within 4 × <see cref="Interval"/> only while a flush takes less
    /// than about 16,000 records' time (2–4 ms at 4–8 M records/s). After a power loss on a file system without ext4's
    /// rename heuristic the file may be empty, or hold an older capture: ignored (or checked against the journal as
    /// always), producers are known from the records only, and the epochs from the records and <see cref="ProducerEpochFile"/>.
    /// </summary>
    private void Write(bool closing, bool durable = true)
    {
        lock (_writeLock)
        {
            if (_closed)
            {
                return;
            }

            _closed = closing;
            _epochCount = _registry?.CaptureEpochs(ref _epochs) ?? 0;
            var length = Encode();
            try
            {
                if (durable)
                {
                    DurableFile.WriteAllBytes(_path, _buffer.AsSpan(0, length));
                }
                else
                {
                    var temporary = _path + ".tmp";
                    using (var handle = File.OpenHandle(temporary, FileMode.Create, FileAccess.Write))
                    {
                        RandomAccess.Write(handle, _buffer.AsSpan(0, length), 0);
                    }

                    File.Move(temporary, _path, overwrite: true);
                }

                _lastFailure = null;
            }
            catch (Exception ex) when (ex is IOException or UnauthorizedAccessException or JournalException)
            {
                // A full disk, say: the previous checkpoint stays (older, so a restart refuses more retries it cannot
                // vouch for, as without any), and publishes are refused by the journal itself. Logged once per cause.
                var failure = $"{FileName}: cannot write it: {ex.Message}";
                if (failure != _lastFailure)
                {
                    _lastFailure = failure;
                    _log?.Invoke(failure);
                }
            }
        }
    }

    private int Encode()
    {
        var need = 16;
        for (var i = 0; i < _captured; i++)
        {
            need += 52 + Encoding.UTF8.GetMaxByteCount(_capture[i].Topic.Name.Length) + Encoding.UTF8.GetMaxByteCount(_capture[i].Previous.Topic?.Name.Length ?? 0);
        }

        need += 4 + (24 * _epochCount) + 4;
        for (var i = 0; i < _pointCount; i++)
        {
            need += 10 + Encoding.UTF8.GetMaxByteCount(_points[i].Topic.Length);
        }

        if (_buffer.Length < need)
        {
            _buffer = new byte[Math.Max(need, _buffer.Length * 2)];
        }

        var span = _buffer.AsSpan();
        BinaryPrimitives.WriteUInt32LittleEndian(span, Magic);
        BinaryPrimitives.WriteUInt32LittleEndian(span[4..], Version);
        BinaryPrimitives.WriteUInt32LittleEndian(span[8..], (uint)_captured);
        var at = 12;
        for (var i = 0; i < _captured; i++)
        {
            ref readonly var e = ref _capture[i];
            BinaryPrimitives.WriteUInt64LittleEndian(span[at..], e.Producer);
            BinaryPrimitives.WriteUInt64LittleEndian(span[(at + 8)..], e.Highest);
            BinaryPrimitives.WriteInt64LittleEndian(span[(at + 16)..], e.Offset);
            BinaryPrimitives.WriteInt64LittleEndian(span[(at + 24)..], e.LastWrite);
            BinaryPrimitives.WriteUInt64LittleEndian(span[(at + 32)..], e.Previous.Sequence);
            BinaryPrimitives.WriteInt64LittleEndian(span[(at + 40)..], e.Previous.Topic is null ? -1 : e.Previous.Offset);
            var n = Encoding.UTF8.GetBytes(e.Topic.Name, span[(at + 50)..]);
            BinaryPrimitives.WriteUInt16LittleEndian(span[(at + 48)..], (ushort)n);
            at += 50 + n;
            var p = e.Previous.Topic is { } previous ? Encoding.UTF8.GetBytes(previous.Name, span[(at + 2)..]) : 0;
            BinaryPrimitives.WriteUInt16LittleEndian(span[at..], (ushort)p);
            at += 2 + p;
        }

        BinaryPrimitives.WriteUInt32LittleEndian(span[at..], (uint)_epochCount);
        at += 4;
        for (var i = 0; i < _epochCount; i++, at += 24)
        {
            BinaryPrimitives.WriteUInt64LittleEndian(span[at..], _epochs[i].Producer);
            BinaryPrimitives.WriteUInt64LittleEndian(span[(at + 8)..], _epochs[i].Epoch);
            BinaryPrimitives.WriteInt64LittleEndian(span[(at + 16)..], _epochs[i].Seen);
        }

        BinaryPrimitives.WriteUInt32LittleEndian(span[at..], _pointCount < 0 ? uint.MaxValue : (uint)_pointCount);
        at += 4;
        for (var i = 0; i < _pointCount; i++)
        {
            BinaryPrimitives.WriteInt64LittleEndian(span[at..], _points[i].Next);
            var n = Encoding.UTF8.GetBytes(_points[i].Topic, span[(at + 10)..]);
            BinaryPrimitives.WriteUInt16LittleEndian(span[(at + 8)..], (ushort)n);
            at += 10 + n;
        }

        BinaryPrimitives.WriteUInt32LittleEndian(span[at..], Crc32C.Compute(span[..at]));
        return at + 4;
    }
}
