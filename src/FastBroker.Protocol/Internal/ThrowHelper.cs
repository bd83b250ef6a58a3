using System.Diagnostics.CodeAnalysis;

namespace FastBroker.Protocol.Internal;

/// <summary>Throws from a separate, never-inlined frame so the writer methods that call it stay small.</summary>
internal static class ThrowHelper
{
    [DoesNotReturn]
    public static void ThrowTooLong(string paramName, int length, int max)
        => throw new ArgumentOutOfRangeException(paramName, length, $"Longer than the {max} bytes the wire format allows.");

    [DoesNotReturn]
    public static void ThrowEmpty(string paramName)
        => throw new ArgumentException("Must not be empty.", paramName);

    [DoesNotReturn]
    public static void ThrowZero(string paramName)
        => throw new ArgumentOutOfRangeException(paramName, 0, "Must be at least 1 (0 is reserved).");

    [DoesNotReturn]
    public static void ThrowFrameTooLarge(long length)
        => throw new ArgumentOutOfRangeException(nameof(length), length, "The frame would be larger than the u32 length field allows.");

    [DoesNotReturn]
    public static void ThrowCapacityTooSmall(int capacity, int minimum)
        => throw new ArgumentOutOfRangeException(nameof(capacity), capacity, $"A batch frame needs at least {minimum} bytes.");

    [DoesNotReturn]
    public static void ThrowBatchCompleted()
        => throw new InvalidOperationException("The batch frame was already completed.");

    [DoesNotReturn]
    public static void ThrowMaxFrameSize(int maxFrameSize)
        => throw new ArgumentOutOfRangeException(nameof(maxFrameSize), maxFrameSize, $"Must be at least {ProtocolConstants.HeaderSize}.");
}
