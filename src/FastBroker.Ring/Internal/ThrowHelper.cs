using System.Diagnostics.CodeAnalysis;

namespace FastBroker.Ring.Internal;

/// <summary>Throws from a separate, never-inlined frame so the hot methods that call it stay small.</summary>
internal static class ThrowHelper
{
    [DoesNotReturn]
    public static void ThrowClaimOutOfRange(int n, int bufferSize)
        => throw new ArgumentOutOfRangeException(nameof(n), n, $"Must be between 1 and the buffer size ({bufferSize}).");

    [DoesNotReturn]
    public static void ThrowBufferSizeInvalid(int bufferSize)
        => throw new ArgumentOutOfRangeException(nameof(bufferSize), bufferSize, "Buffer size must be a power of two and at least 1.");

    [DoesNotReturn]
    public static void ThrowAlreadyRunning(string what)
        => throw new InvalidOperationException($"{what} is already running or has run.");

    [DoesNotReturn]
    public static void ThrowAlreadyStarted()
        => throw new InvalidOperationException("The disruptor has already been started: add consumers before Start().");

    [DoesNotReturn]
    public static void ThrowNullEntry()
        => throw new InvalidOperationException("The event factory returned null.");
}
