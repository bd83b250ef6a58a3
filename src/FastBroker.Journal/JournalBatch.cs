namespace FastBroker.Journal;

/// <summary>
/// A reservation in the current segment (from <see cref="JournalLog.TryBeginBatch"/>): records appended here
/// skip the per-record segment, back-pressure and state checks (only the reservation bound is compared) and are
/// published together by <see cref="Complete"/>. All records of a batch share one timestamp.
/// </summary>
/// <remarks>A ref struct on the writer thread; do not declare it with <c>using</c> (that copies it).</remarks>
public ref struct JournalBatch
{
    private readonly JournalLog? _log;
    private readonly int _reservationEnd;
    private readonly long _timestamp;

    internal JournalBatch(JournalLog log, int reservationEnd, long firstOffset, long timestamp)
    {
        _log = log;
        _reservationEnd = reservationEnd;
        FirstOffset = firstOffset;
        _timestamp = timestamp;
    }

    /// <summary>Offset of the batch's first record.</summary>
    public readonly long FirstOffset { get; }

    /// <summary>Records appended so far.</summary>
    public int Count { get; private set; }

    /// <summary>Appends a payload-only record; returns its offset.</summary>
    /// <exception cref="InvalidOperationException">The record does not fit in what is left of the reservation.</exception>
    public long Append(ReadOnlySpan<byte> payload) => Append(default, default, payload, RecordFlags.None);

    /// <summary>Appends a record with key, header block and flags; returns its offset.</summary>
    /// <exception cref="InvalidOperationException">The record does not fit in what is left of the reservation.</exception>
    public long Append(ReadOnlySpan<byte> key, ReadOnlySpan<byte> headers, ReadOnlySpan<byte> payload, RecordFlags flags)
    {
        var log = _log ?? throw new InvalidOperationException("Not a batch from TryBeginBatch.");
        var offset = log.AppendReserved(key, headers, payload, flags, _timestamp, _reservationEnd);
        Count++;
        return offset;
    }

    /// <summary>Publishes the batch's records (one release write); follow with <see cref="JournalLog.Commit"/>.</summary>
    public readonly void Complete()
    {
        if (Count > 0)
        {
            _log?.PublishAppends();
        }
    }
}
