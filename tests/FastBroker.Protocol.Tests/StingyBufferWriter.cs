using System.Buffers;

namespace FastBroker.ProtocolTests;

/// <summary>
/// An <see cref="IBufferWriter{T}"/> that hands out the smallest span the contract allows (exactly the size
/// hint, or 1 byte), each in a fresh array, so every chunking path of the writers runs.
/// </summary>
internal sealed class StingyBufferWriter : IBufferWriter<byte>
{
    private readonly List<byte> _written = [];
    private byte[] _current = [];

    public byte[] WrittenBytes => [.. _written];

    public int GetSpanCalls { get; private set; }

    public void Advance(int count)
    {
        if (count > _current.Length)
        {
            throw new InvalidOperationException("advanced past the span");
        }

        _written.AddRange(_current.AsSpan(0, count).ToArray());
        _current = [];
    }

    public Memory<byte> GetMemory(int sizeHint = 0) => _current = new byte[Math.Max(sizeHint, 1)];

    public Span<byte> GetSpan(int sizeHint = 0)
    {
        GetSpanCalls++;
        return GetMemory(sizeHint).Span;
    }
}
