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
/// file is always whole). The broker writes one at open, after recovery, and one at close. So every record written after
/// the capture on disk — at most <see cref="Interval"/> records plus one capture being written — lies within the rescan
/// of <see cref="BrokerOptions.ProducerRecoveryRecords"/> newest records of its topic, which is at least
/// 4 × <see cref="Interval"/> (<see cref="BrokerOptions.MinProducerRecoveryRecords"/>, enforced by
/// <see cref="BrokerOptions.Validate"/>; 0 reads neither the rescan nor the file); the rescan finds those, the file
/// vouches for everything before.
/// </para>
/// <para>
/// Each entry is checked against the journal when it is loaded: the record at (topic, offset) must still carry that
/// producer and sequence. An entry that does not match (the journal was cut after a failover or lost its unsynced tail,
/// or the file came from a primary ahead of this standby's copy) is ignored, so the file can only make the broker
/// refuse an unknown retry ("older than the oldest sequence known"), never confirm one it does not hold.
/// </para>
/// Format, little-endian: "FBPS", version 2, count (u32), then per producer id (u64), highest sequence (u64), offset
/// (i64), newest write (i64 Unix ms: a restart ages the producer by it, as the running broker's sweep does), topic name
/// length (u16) and UTF-8 name; then the CRC32C of everything before it (u32). Version 1 (no newest write) is still
/// read: its producers are aged by their highest sequence's record.
/// </remarks>
internal sealed class ProducerCheckpoint : IThreadPoolWorkItem
{
    /// <summary>Records written between two captures.</summary>
    public const int Interval = 8192;

    public const string FileName = "producers.state";

    private const uint Magic = 0x53504246; // "FBPS"
    private const uint Version = 2;

    private readonly string _path;
    private readonly string _temporary;
    private readonly object _writeLock = new();
    private readonly Action<string>? _log;
    private ProducerRegistry.Entry[] _capture = new ProducerRegistry.Entry[16];
    private int _captured;
    private byte[] _buffer = new byte[4096];
    private int _writing; // 1 while a capture waits for or is in its write
    private bool _closed; // under _writeLock
    private string? _lastFailure;

    public ProducerCheckpoint(string dataDirectory, Action<string>? log)
    {
        _path = Path.Combine(dataDirectory, FileName);
        _temporary = _path + ".tmp";
        _log = log;
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
            Write(closing);
        }
        finally
        {
            Volatile.Write(ref _writing, 0);
        }
    }

    void IThreadPoolWorkItem.Execute()
    {
        try
        {
            Write(closing: false);
        }
        finally
        {
            Volatile.Write(ref _writing, 0);
        }
    }

    /// <summary>
    /// Reads the file (absent or damaged: nothing) and returns each entry whose record the topics' journals still hold
    /// with that producer and sequence, through <paramref name="verify"/>, with the producer's newest write (that record's
    /// timestamp if later, or alone in a version 1 file) and the record's producer epoch.
    /// </summary>
    public static List<(ulong Producer, ulong Highest, TopicState Topic, long Offset, long Timestamp, ulong Epoch)> Load(string dataDirectory, Func<string, long, (ulong Producer, ulong Sequence, ulong Epoch, long Timestamp)?> verify, Func<string, TopicState?> topicOf, out string? problem)
    {
        problem = null;
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
        if (span.Length < 16 || BinaryPrimitives.ReadUInt32LittleEndian(span) != Magic || version is not (1 or Version)
            || Crc32C.Compute(span[..^4]) != BinaryPrimitives.ReadUInt32LittleEndian(span[^4..]))
        {
            problem = $"{FileName}: damaged or of an unknown version ({span.Length} bytes): ignored, producers are known from the newest records only";
            return result;
        }

        var count = BinaryPrimitives.ReadUInt32LittleEndian(span[8..]);
        var at = 12;
        var end = span.Length - 4;
        var ignored = 0;
        for (var i = 0u; i < count; i++)
        {
            var fixedLength = version == 1 ? 26 : 34;
            if (at + fixedLength > end)
            {
                problem = $"{FileName}: entry {i} of {count} runs past the end: ignored from there";
                break;
            }

            var id = BinaryPrimitives.ReadUInt64LittleEndian(span[at..]);
            var highest = BinaryPrimitives.ReadUInt64LittleEndian(span[(at + 8)..]);
            var offset = BinaryPrimitives.ReadInt64LittleEndian(span[(at + 16)..]);
            var lastWrite = version == 1 ? long.MinValue : BinaryPrimitives.ReadInt64LittleEndian(span[(at + 24)..]);
            int nameLength = BinaryPrimitives.ReadUInt16LittleEndian(span[(at + fixedLength - 2)..]);
            at += fixedLength;
            if (at + nameLength > end)
            {
                problem = $"{FileName}: entry {i} of {count} runs past the end: ignored from there";
                break;
            }

            var name = Encoding.UTF8.GetString(span.Slice(at, nameLength));
            at += nameLength;
            if (topicOf(name) is { } topic && verify(name, offset) is { } found && (found.Producer, found.Sequence) == (id, highest))
            {
                result.Add((id, highest, topic, offset, Math.Max(found.Timestamp, lastWrite), found.Epoch));
            }
            else
            {
                ignored++;
            }
        }

        if (ignored > 0 && problem is null)
        {
            problem = $"{FileName}: {ignored} of {count} producers' newest records are not in this journal (cut, lost with an unsynced tail, or not yet copied): those producers are known from the newest records only";
        }

        return result;
    }

    private void Write(bool closing)
    {
        lock (_writeLock)
        {
            if (_closed)
            {
                return;
            }

            _closed = closing;
            var length = Encode();
            try
            {
                using (var handle = File.OpenHandle(_temporary, FileMode.Create, FileAccess.Write))
                {
                    RandomAccess.Write(handle, _buffer.AsSpan(0, length), 0);
                }

                File.Move(_temporary, _path, overwrite: true);
                _lastFailure = null;
            }
            catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
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
            need += 34 + Encoding.UTF8.GetMaxByteCount(_capture[i].Topic.Name.Length);
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
            var n = Encoding.UTF8.GetBytes(e.Topic.Name, span[(at + 34)..]);
            BinaryPrimitives.WriteUInt16LittleEndian(span[(at + 32)..], (ushort)n);
            at += 34 + n;
        }

        BinaryPrimitives.WriteUInt32LittleEndian(span[at..], Crc32C.Compute(span[..at]));
        return at + 4;
    }
}
