using System.Buffers;

namespace FastBroker.Protocol;

/// <summary>A parsed, validated CONFIRM (server → client). Valid only during the handler call.</summary>
public readonly struct ConfirmFrame
{
    internal ConfirmFrame(in ReadOnlySequence<byte> ranges, int count)
    {
        Ranges = ranges;
        Count = count;
    }

    /// <summary>Number of ranges (≥ 1).</summary>
    public int Count { get; }

    /// <summary>The encoded ranges (24 bytes each).</summary>
    public ReadOnlySequence<byte> Ranges { get; }

    /// <summary>Enumerates the ranges.</summary>
    public ConfirmRangeEnumerator GetEnumerator() => new(Ranges);
}
