using System.Buffers;

namespace FastBroker.Protocol;

/// <summary>One header: a UTF-8 name (1–255 bytes) and a value (0–65535 bytes), as slices of the frame.</summary>
public readonly struct HeaderEntry
{
    internal HeaderEntry(in ReadOnlySequence<byte> name, in ReadOnlySequence<byte> value)
    {
        Name = name;
        Value = value;
    }

    /// <summary>The UTF-8 name.</summary>
    public ReadOnlySequence<byte> Name { get; }

    /// <summary>The value bytes.</summary>
    public ReadOnlySequence<byte> Value { get; }

    /// <summary>True when the name equals <paramref name="name"/> byte for byte.</summary>
    public bool NameEquals(ReadOnlySpan<byte> name) => SequenceEquals(Name, name);

    /// <summary>True when the value equals <paramref name="value"/> byte for byte (header filters).</summary>
    public bool ValueEquals(ReadOnlySpan<byte> value) => SequenceEquals(Value, value);

    internal static bool SequenceEquals(in ReadOnlySequence<byte> sequence, ReadOnlySpan<byte> other)
    {
        if (sequence.Length != other.Length)
        {
            return false;
        }

        if (sequence.IsSingleSegment)
        {
            return sequence.FirstSpan.SequenceEqual(other);
        }

        foreach (var memory in sequence)
        {
            var span = memory.Span;
            if (!span.SequenceEqual(other[..span.Length]))
            {
                return false;
            }

            other = other[span.Length..];
        }

        return true;
    }
}
