using System.Buffers;
using System.Buffers.Binary;
using FastBroker.Protocol.Internal;

namespace FastBroker.Protocol;

/// <summary>
/// Builds one CONFIRM frame in place from per-message outcomes, merging each into the previous range when the
/// request ids are consecutive, the status and duplicate flag match and (when stored) the offsets are
/// consecutive: a pipelined producer's 1000 confirmations usually become one 24-byte range. Back-patches length
/// and range count on <see cref="Complete"/>. Allocation-free.
/// </summary>
public ref struct ConfirmWriter
{
    private const int FixedBody = 4;
    private const int CountOffset = ProtocolConstants.HeaderSize;

    private readonly IBufferWriter<byte> _output;
    private readonly Span<byte> _frame;
    private int _length;
    private bool _completed;
    private ConfirmRange _last;

    /// <summary>Starts a CONFIRM of at most <paramref name="capacity"/> bytes.</summary>
    public ConfirmWriter(IBufferWriter<byte> output, int capacity)
    {
        if (capacity < ProtocolConstants.HeaderSize + FixedBody + ProtocolConstants.ConfirmRangeSize)
        {
            ThrowHelper.ThrowCapacityTooSmall(capacity, ProtocolConstants.HeaderSize + FixedBody + ProtocolConstants.ConfirmRangeSize);
        }

        _output = output;
        _frame = output.GetSpan(capacity)[..capacity];
        var c = new SpanCursor(_frame, 0);
        c.Header(FrameType.Confirm, 0, 0);
        c.U16(0); // range count, back-patched
        c.U16(0);
        _length = c.Position;
        RangeCount = 0;
        _completed = false;
        _last = default;
    }

    /// <summary>Ranges written so far.</summary>
    public int RangeCount { get; private set; }

    /// <summary>Adds the outcome of one request: stored at <paramref name="offset"/> (status None) or failed. False when a new range does not fit.</summary>
    public bool TryAdd(ulong requestId, ErrorCode status, ulong offset, bool duplicate = false)
        => TryAdd(new ConfirmRange(requestId, 1, status, duplicate, status == ErrorCode.None ? offset : 0));

    /// <summary>Adds a range (merged into the previous one when contiguous). False when a new range does not fit.</summary>
    public bool TryAdd(in ConfirmRange range)
    {
        if (_completed)
        {
            ThrowHelper.ThrowBatchCompleted();
        }

        Check.NonZero(range.Count, nameof(range));
        if (RangeCount > 0 && CanMerge(_last, range))
        {
            _last = new ConfirmRange(_last.FirstRequestId, _last.Count + range.Count, _last.Status, _last.Duplicate, _last.FirstOffset);
            BinaryPrimitives.WriteUInt32LittleEndian(_frame[(_length - ProtocolConstants.ConfirmRangeSize + 8)..], _last.Count);
            return true;
        }

        if (RangeCount == ProtocolConstants.MaxBatchCount || _frame.Length - _length < ProtocolConstants.ConfirmRangeSize)
        {
            return false;
        }

        var c = new SpanCursor(_frame, _length);
        c.U64(range.FirstRequestId);
        c.U32(range.Count);
        c.U16((ushort)range.Status);
        c.U16(range.Duplicate ? (ushort)1 : (ushort)0);
        c.U64(range.FirstOffset);
        _length = c.Position;
        _last = range;
        RangeCount++;
        return true;
    }

    private static bool CanMerge(in ConfirmRange last, in ConfirmRange next)
        => next.FirstRequestId == last.FirstRequestId + last.Count
            && next.Status == last.Status
            && next.Duplicate == last.Duplicate
            && (ulong)last.Count + next.Count <= uint.MaxValue
            && (last.Status != ErrorCode.None ? next.FirstOffset == 0 && last.FirstOffset == 0 : next.FirstOffset == last.FirstOffset + last.Count);

    /// <summary>Back-patches length and range count and advances the writer; returns the frame's bytes (0 and nothing written when empty).</summary>
    public int Complete()
    {
        if (_completed)
        {
            ThrowHelper.ThrowBatchCompleted();
        }

        _completed = true;
        if (RangeCount == 0)
        {
            return 0;
        }

        BinaryPrimitives.WriteUInt32LittleEndian(_frame, (uint)(_length - ProtocolConstants.LengthPrefixSize));
        BinaryPrimitives.WriteUInt16LittleEndian(_frame[CountOffset..], (ushort)RangeCount);
        _output.Advance(_length);
        return _length;
    }
}
