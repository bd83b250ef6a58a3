using System.Buffers;

namespace FastBroker.Protocol;

/// <summary>Enumerates the ranges of a validated CONFIRM without allocating.</summary>
public ref struct ConfirmRangeEnumerator
{
    private SequenceReader<byte> _reader;

    internal ConfirmRangeEnumerator(ReadOnlySequence<byte> ranges)
    {
        _reader = new SequenceReader<byte>(ranges);
        Current = default;
    }

    /// <summary>The current range.</summary>
    public ConfirmRange Current { get; private set; }

    /// <summary>Moves to the next range.</summary>
    public bool MoveNext()
    {
        if (_reader.Remaining < ProtocolConstants.ConfirmRangeSize)
        {
            return false;
        }

        _reader.TryReadLittleEndian(out long first);
        _reader.TryReadLittleEndian(out int count);
        _reader.TryReadLittleEndian(out short status);
        _reader.TryReadLittleEndian(out short flags);
        _reader.TryReadLittleEndian(out long offset);
        Current = new ConfirmRange((ulong)first, (uint)count, (ErrorCode)(ushort)status, (flags & 1) != 0, (ulong)offset);
        return true;
    }
}
