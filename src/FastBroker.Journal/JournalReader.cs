using System.Net.Sockets;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using FastBroker.Journal.Internal;

namespace FastBroker.Journal;

/// <summary>
/// A cursor over durable records, returning views over the mapped segment (no copy). Holds a reference on its
/// current segment, so the mapping stays valid while the reader is positioned there. One thread at a time per
/// reader; dispose it to release the segment (and, for a pinning reader, its retention floor).
/// </summary>
/// <remarks>
/// <para>A reader does not hold retention back (Kafka's and JetStream's limits retention, Chronicle's): retention
/// deletes a segment the reader is in all the same, and the reader then moves to the journal's first retained record
/// and adds the records it never saw to <see cref="Skipped"/>. A reader opened with <c>pinRetention</c> is a retention
/// floor instead: nothing at or after its <see cref="NextOffset"/> is deleted (for a replication stream, which must
/// never have a gap), unless that would hold back more than <see cref="MaxRetentionHoldBytes"/>: then retention passes
/// it as it passes any reader.</para>
/// <para><b>Paused readers do not hold deleted segments.</b> A deleted segment's mapping (and so the unlinked file's
/// disk blocks) is kept only while the reader may still touch it: from a read that returned a record or a run until
/// the reader's next call. A reader is <i>parked</i>, holding no span, when it is new; after a <see cref="TryRead"/>,
/// <see cref="TryReadRun"/>, <see cref="SendTo"/> or <see cref="SendFileTo"/> that found nothing, and after any send;
/// while it waits (<see cref="WaitToRead"/>, <see cref="WaitToReadAsync"/>); and after <see cref="Park"/>. The
/// retention pass that deletes a segment releases it for every reader parked in it, and a reader that parks in a
/// deleted segment later releases it itself. Either way the records of that segment it had not read are lost to it:
/// its next read continues at the first retained record and counts them in <see cref="Skipped"/>. A reader that is not
/// parked reads on in the deleted segment from the mapping until it parks or reaches the segment's end. So a consumer
/// that stops reading pins no disk; one that stops while holding a record's spans should call <see cref="Park"/>.</para>
/// <para><b>A record held keeps its segment.</b> A <see cref="JournalRecord"/> or <see cref="JournalRun"/> (and every
/// span taken from it) points into the mapping, and the reader keeps that segment mapped for it: while the caller holds
/// one, without calling <see cref="Park"/> or reading again, that segment stays mapped, and if retention deletes it the
/// file's disk blocks stay taken (the journal's <see cref="JournalLog.SizeOnDisk"/> no longer counts them) and the
/// reader reads on in it from the mapping when it resumes. Copy what must outlive the next call, then park.</para>
/// <para><b>A reader dropped undisposed</b> (an embedded caller that forgot it, a session ended by an exception) is not
/// kept alive by the journal, which holds its readers weakly: once the garbage collector has found it unreachable and
/// run its finalizer, its segment is released (a deleted one's mapping and blocks go) and its retention floor with it,
/// and it leaves the journal's lists, so a loop that opens and abandons readers does not grow them. Until that
/// collection, which may be long in coming, it holds what a live reader holds (a pinning one still holds retention
/// back): dispose readers. The spans of the records it returned are invalid from then on, as after
/// <see cref="Dispose"/>.</para>
/// </remarks>
public sealed partial class JournalReader : IDisposable
{
    private readonly JournalLog _log;
    private readonly bool _verify;
    private Segment? _segment;
    private int _position;

    // Where the reader's current stretch of records in _segment began: it read [_knownGoodFrom, _position) one record
    // after another, each known good (below the segment's verified watermark, written by this process, or checked by
    // it), so a checked record extends the watermark when the watermark has reached this (Segment.AdvanceVerified).
    private int _knownGoodFrom;
    private long _nextOffset;
    private long _skipped;
    private long _maxRetentionHoldBytes = long.MaxValue;
    private long _pinOverrides;

    // Parked: the owner holds no span into _segment and touches neither until it un-parks under _gate. Only the owner
    // writes it (under _gate); retention reads it under _gate and may then take a deleted segment away (see Park).
    private bool _parked = true;
    private readonly Lock _gate = new();

    internal JournalReader(JournalLog log, string? name, Segment? segment, int position, long nextOffset, bool verify, bool pinsRetention = false)
    {
        _log = log;
        Name = name;
        _segment = segment;
        _position = _knownGoodFrom = position;
        _nextOffset = nextOffset;
        _verify = verify;
        PinsRetention = pinsRetention;
        Registration = new WeakReference<JournalReader>(this);
    }

    /// <summary>The name positions are saved under (null for an anonymous reader).</summary>
    public string? Name { get; }

    /// <summary>Offset of the record the next read returns.</summary>
    public long NextOffset => _nextOffset;

    /// <summary>
    /// Records this reader never saw because retention deleted them before it got there (it moved on to the
    /// first retained record). Grows only; 0 for a reader that pins retention, unless retention passed it
    /// (<see cref="PinOverrides"/>). Read it on the reader's thread.
    /// </summary>
    public long Skipped => _skipped;

    /// <summary>True when this reader is a retention floor at its <see cref="NextOffset"/> (<c>pinRetention</c>).</summary>
    public bool PinsRetention { get; }

    /// <summary>
    /// For a reader that pins retention: the most it may hold retention back, in bytes of sealed segments that the
    /// retention limits (or <see cref="JournalLog.TruncateBefore"/>) would delete but keep only because this reader has
    /// not read past them. A pass that would have to keep more ignores the pin: it deletes as if the reader did not
    /// pin, the reader continues at the first retained record (after finishing its retired segment from the mapping if
    /// it is not parked, see the class remarks) and counts the gap in <see cref="Skipped"/>; the pass counts in
    /// <see cref="PinOverrides"/>. The pin holds again in
    /// later passes, within the same bound. Default <see cref="long.MaxValue"/>: no bound (the disk may fill). No
    /// effect on a reader that does not pin. Any thread.
    /// </summary>
    /// <exception cref="ArgumentOutOfRangeException">Negative.</exception>
    public long MaxRetentionHoldBytes
    {
        get => Volatile.Read(ref _maxRetentionHoldBytes);
        set
        {
            ArgumentOutOfRangeException.ThrowIfNegative(value);
            Volatile.Write(ref _maxRetentionHoldBytes, value);
        }
    }

    /// <summary>
    /// Retention passes that deleted records this pinning reader had not read yet, because keeping them would have held
    /// retention back by more than <see cref="MaxRetentionHoldBytes"/>. Grows only. Any thread.
    /// </summary>
    public long PinOverrides => Volatile.Read(ref _pinOverrides);

    /// <summary>The floor a pinning reader puts under retention (any thread: a stale value is a lower, safe one).</summary>
    internal long PinnedOffset => Volatile.Read(ref _nextOffset);

    /// <summary>A retention pass ignored this reader's pin (under the journal's segments lock).</summary>
    internal void CountPinOverride() => Interlocked.Increment(ref _pinOverrides);

    /// <summary>
    /// Reads the next durable record, if there is one. The record's spans point into the mapping and are valid
    /// until the next call on this reader (false: the reader is parked, see the class remarks); until then the reader
    /// keeps the record's segment mapped, also once retention has deleted it (call <see cref="Park"/> when stopping
    /// while holding it). Never allocates.
    /// </summary>
    /// <exception cref="JournalCorruptionException">A checking reader (the default, <see cref="JournalLog.OpenReader(ReadStart, bool, bool)"/>)
    /// met a damaged record (one not yet known good in this process, see there): the reader stays before it, and every
    /// later read throws again.</exception>
    public bool TryRead(out JournalRecord record)
    {
        var segment = _segment;
        int durableEnd;
        if (!_parked && segment is not null && _position < (durableEnd = Segment.PositionOf(segment.Durable)))
        {
            var bytes = segment.Bytes;
            var length = _verify && !segment.IsVerified(_position)
                ? Checked(segment, _position, durableEnd, _nextOffset, _knownGoodFrom)
                : (int)Unsafe.ReadUnaligned<uint>(ref MemoryMarshal.GetReference(bytes.Slice(_position)));
            record = new JournalRecord(bytes.Slice(_position, length));
            _position += RecordLayout.Align(length);
            _nextOffset++;
            return true;
        }

        return TryReadSlow(out record);
    }

    /// <summary>
    /// Returns up to <paramref name="maxBytes"/> of consecutive whole records from one segment (at least one
    /// record, even if larger) and moves past them. The run is valid, and keeps its segment mapped, until the next call
    /// on this reader, as <see cref="TryRead"/>'s record. A checking reader ends a run before a damaged record, and the
    /// next call (or <see cref="SendTo"/>, <see cref="SendFileTo"/>) throws <see cref="JournalCorruptionException"/> at it.
    /// </summary>
    public bool TryReadRun(int maxBytes, out JournalRun run)
    {
        if (!TryPeekRun(maxBytes, out var segment, out var start, out var end, out var count))
        {
            run = default;
            return false;
        }

        run = new JournalRun(segment.Bytes.Slice(start, end - start), _nextOffset, count, segment.Handle, start);
        _position = end;
        _nextOffset += count;
        return true;
    }

    /// <summary>
    /// Sends up to <paramref name="maxBytes"/> of whole records to <paramref name="socket"/> straight from the
    /// mapping (<see cref="Socket.Send(ReadOnlySpan{byte})"/> of the mapped span: no managed buffer, no copy
    /// in user space) and moves past them. Blocks until the run is sent; returns the bytes sent (0: nothing durable
    /// to send). If the send throws, the reader does not move.
    /// </summary>
    public int SendTo(Socket socket, int maxBytes = 1 << 20)
    {
        if (!TryPeekRun(maxBytes, out var segment, out var start, out var end, out var count))
        {
            return 0;
        }

        var span = segment.Bytes.Slice(start, end - start);
        var sent = 0;
        while (sent < span.Length)
        {
            sent += socket.Send(span.Slice(sent));
        }

        _position = end;
        _nextOffset += count;
        Park(); // the send is done with the mapping
        return sent;
    }

    /// <summary>
    /// Like <see cref="SendTo"/> but with <c>sendfile(2)</c> from the segment file: the kernel copies page cache
    /// to socket, the bytes are never copied into this process (a checking reader reads those not yet known good in this
    /// process through the mapping for their CRC32C first). The socket must be in blocking mode.
    /// </summary>
    public int SendFileTo(Socket socket, int maxBytes = 1 << 20)
    {
        if (!TryPeekRun(maxBytes, out var segment, out var start, out var end, out var count))
        {
            return 0;
        }

        long fileOffset = start;
        var socketFd = (int)socket.SafeHandle.DangerousGetHandle();
        var fileFd = (int)segment.Handle.DangerousGetHandle();
        while (fileOffset < end)
        {
            var n = Native.Sendfile(socketFd, fileFd, ref fileOffset, (nuint)(end - fileOffset));
            if (n < 0)
            {
                var errno = Marshal.GetLastPInvokeError();
                if (errno == Native.EIntr)
                {
                    continue;
                }

                throw new SocketException(errno);
            }
        }

        _position = end;
        _nextOffset += count;
        Park(); // the kernel is done with the file
        return end - start;
    }

    /// <summary>
    /// Waits until a record is durable at <see cref="NextOffset"/> (a tailing reader's park: it holds no span while it
    /// waits, see <see cref="Park"/>). No thread is held.
    /// </summary>
    public ValueTask WaitToReadAsync(CancellationToken cancellationToken = default)
    {
        Park();
        return _log.WaitForDurableAsync(_nextOffset, cancellationToken);
    }

    /// <summary>
    /// Blocks until a record is durable at <see cref="NextOffset"/>, or the timeout passes (false). The reader is parked
    /// meanwhile (<see cref="Park"/>).
    /// </summary>
    public bool WaitToRead(TimeSpan timeout)
    {
        Park();
        return _log.WaitForDurable(_nextOffset, timeout);
    }

    /// <summary>
    /// Says that the spans of the record or run last returned are no longer used: until its next read the reader holds
    /// nothing retention must keep. If its segment has been (or is later) deleted by retention, the mapping is released
    /// now (or by that retention pass), the disk blocks of the unlinked file are freed, and the next read continues at
    /// the first retained record, counting the records of that segment not yet read in <see cref="Skipped"/>. For a
    /// consumer that stops between reads (flow control, no credit); reads park by themselves when they find nothing,
    /// and waits park. Cheap when already parked; otherwise one uncontended lock. The reader's thread.
    /// </summary>
    public void Park()
    {
        if (_parked)
        {
            return;
        }

        ParkSlow();
    }

    /// <summary>Persists <see cref="NextOffset"/> under <see cref="Name"/> (fsync'd, atomic rename).</summary>
    /// <exception cref="InvalidOperationException">The reader has no name.</exception>
    public void SavePosition()
    {
        if (Name is null)
        {
            throw new InvalidOperationException("Only named readers save positions (JournalLog.OpenReader(name, …)).");
        }

        _log.SaveReaderPosition(Name, _nextOffset);
    }

    /// <summary>Places a pinning reader once it is registered (its floor was <see cref="long.MinValue"/> until now).</summary>
    internal void Place(Segment? segment, int position, long nextOffset)
    {
        _segment = segment;
        _position = _knownGoodFrom = position;
        Volatile.Write(ref _nextOffset, nextOffset);
    }

    private bool TryReadSlow(out JournalRecord record)
    {
        record = default;
        if (_parked)
        {
            Unpark();
        }

        if (!MoveToData())
        {
            Park();
            return false;
        }

        return TryRead(out record);
    }

    /// <summary>
    /// Ensures the reader sits before a durable record: moves to the next segment when this one is done, or to the
    /// first retained record when retention deleted the next one (or the reader never held one below it).
    /// </summary>
    private bool MoveToData()
    {
        while (true)
        {
            var segment = _segment;
            if (segment is not null && _position < Segment.PositionOf(segment.Durable))
            {
                return true;
            }

            if (segment is not null && _nextOffset < segment.BaseOffset + Segment.CountOf(segment.Durable))
            {
                return false;
            }

            var next = _log.AcquireSegmentStartingAt(_nextOffset);
            if (next is null)
            {
                if (_log.FirstOffset > _nextOffset)
                {
                    SkipToFirstRetained();
                    if (_segment is null)
                    {
                        return false;
                    }

                    continue;
                }

                return false;
            }

            if (ReferenceEquals(next, segment))
            {
                // Still the active segment and nothing new is durable in it yet (e.g. an empty journal).
                next.Release();
                return false;
            }

            segment?.Release();
            _segment = next;
            _position = _knownGoodFrom = SegmentHeader.Size;
        }
    }

    /// <summary>
    /// Retention deleted the records from <see cref="NextOffset"/> on (limits win over a reader's position): let go
    /// of the segment just finished (it may be a retired one, kept mapped for this reader alone) and continue at the
    /// first retained record, counting the ones passed over. The slow path of a slow reader: not inlined.
    /// </summary>
    [MethodImpl(MethodImplOptions.NoInlining)]
    private void SkipToFirstRetained()
    {
        var from = _nextOffset;
        var segment = _segment;
        _segment = null;
        segment?.Release();
        _log.LocateOffset(from, out _segment, out _position, out var offset);
        _knownGoodFrom = _position;
        Volatile.Write(ref _nextOffset, offset);
        _skipped += Math.Max(0, offset - from);
    }

    private bool TryPeekRun(int maxBytes, out Segment segment, out int start, out int end, out int count)
    {
        segment = null!;
        start = end = count = 0;
        if (_parked)
        {
            Unpark();
        }

        if (!MoveToData())
        {
            Park();
            return false;
        }

        segment = _segment!;
        var durableEnd = Segment.PositionOf(segment.Durable);
        var bytes = segment.Bytes;
        start = end = _position;
        long checkedTo = 0;
        while (end < durableEnd)
        {
            int length;
            if (_verify && !segment.IsVerified(end))
            {
                var status = RecordLayout.Check(bytes, end, durableEnd, _nextOffset + count, verifyCrc: true, out length);
                _log.CountCrcCheck();
                if (status != RecordStatus.Ok)
                {
                    if (count > 0)
                    {
                        break; // the records before the damaged one go; the next call throws at it
                    }

                    ThrowDamaged(segment, end, _nextOffset, status);
                }

                checkedTo = Segment.Pack((int)(_nextOffset - segment.BaseOffset) + count + 1, end + RecordLayout.Align(length));
            }
            else
            {
                length = (int)Unsafe.ReadUnaligned<uint>(ref MemoryMarshal.GetReference(bytes.Slice(end)));
            }

            var stored = RecordLayout.Align(length);
            if (count > 0 && end + stored - start > maxBytes)
            {
                break;
            }

            end += stored;
            count++;
        }

        if (checkedTo > 0)
        {
            // Checked, the run's records are known good: one compare-and-swap for the run, not one per record (a record
            // checked but left out of the run by maxBytes is whole and good too).
            segment.AdvanceVerified(_knownGoodFrom, checkedTo);
        }

        return count > 0;
    }

    /// <summary>
    /// The length of the record at <paramref name="position"/>, at or past its segment's verified watermark, which must
    /// be whole (length within the durable part, key and header lengths within it), carry
    /// <paramref name="expectedOffset"/> and match its CRC32C; otherwise a <see cref="JournalCorruptionException"/>
    /// naming the segment, the position and the offset. A good record moves the watermark past it when the reader's
    /// stretch from <paramref name="knownGoodFrom"/> joins it. No allocation.
    /// </summary>
    [MethodImpl(MethodImplOptions.NoInlining)]
    private int Checked(Segment segment, int position, int durableEnd, long expectedOffset, int knownGoodFrom)
    {
        var status = RecordLayout.Check(segment.Bytes, position, durableEnd, expectedOffset, verifyCrc: true, out var length);
        _log.CountCrcCheck();
        if (status != RecordStatus.Ok)
        {
            ThrowDamaged(segment, position, expectedOffset, status);
        }

        segment.AdvanceVerified(knownGoodFrom, Segment.Pack((int)(expectedOffset - segment.BaseOffset) + 1, position + RecordLayout.Align(length)));
        return length;
    }
}
