using System.Buffers.Binary;
using System.Text;
using FastBroker.Journal;

namespace FastBroker.Engine;

// Writing a capture to producers.state.
internal sealed partial class ProducerCheckpoint
{
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
            _epochCount = _registry?.CaptureEpochs(ref _epochs, _clock.GetUtcNow().ToUnixTimeMilliseconds()) ?? 0;
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
                Written(succeeded: true);
            }
            catch (Exception ex) when (ex is IOException or UnauthorizedAccessException or JournalException)
            {
                // A full disk, say: the previous checkpoint stays (older, so a restart refuses more retries it cannot
                // vouch for, as without any), and publishes are refused by the journal itself. Logged once per cause.
                Written(succeeded: false);
                var failure = $"{FileName}: cannot write it: {ex.Message} (retention is not held for it until a write succeeds)";
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

        need += 4 + (24 * _epochCount) + 8 + 4;
        for (var i = 0; i < _pointCount; i++)
        {
            need += 18 + Encoding.UTF8.GetMaxByteCount(_points[i].Topic.Name.Length);
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

        BinaryPrimitives.WriteInt64LittleEndian(span[at..], _capturedAtMs);
        at += 8;
        BinaryPrimitives.WriteUInt32LittleEndian(span[at..], _pointCount < 0 ? uint.MaxValue : (uint)_pointCount);
        at += 4;
        for (var i = 0; i < _pointCount; i++)
        {
            BinaryPrimitives.WriteInt64LittleEndian(span[at..], _points[i].Next);
            BinaryPrimitives.WriteUInt64LittleEndian(span[(at + 8)..], _points[i].Incarnation);
            var n = Encoding.UTF8.GetBytes(_points[i].Topic.Name, span[(at + 18)..]);
            BinaryPrimitives.WriteUInt16LittleEndian(span[(at + 16)..], (ushort)n);
            at += 18 + n;
        }

        BinaryPrimitives.WriteUInt32LittleEndian(span[at..], Crc32C.Compute(span[..at]));
        return at + 4;
    }
}
