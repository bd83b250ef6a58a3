using System.Buffers;

namespace FastBroker.Protocol;

/// <summary>Enumerates the tags of a validated ACK without allocating.</summary>
public ref struct DeliveryTagEnumerator
{
    private SequenceReader<byte> _reader;

    internal DeliveryTagEnumerator(ReadOnlySequence<byte> tags)
    {
        _reader = new SequenceReader<byte>(tags);
        Current = default;
    }

    /// <summary>The current tag.</summary>
    public DeliveryTag Current { get; private set; }

    /// <summary>Moves to the next tag.</summary>
    public bool MoveNext()
    {
        if (_reader.Remaining < ProtocolConstants.DeliveryTagSize)
        {
            return false;
        }

        _reader.TryReadLittleEndian(out long offset);
        _reader.TryReadLittleEndian(out int count);
        Current = new DeliveryTag((ulong)offset, (uint)count);
        return true;
    }
}
