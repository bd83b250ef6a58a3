using System.Diagnostics.CodeAnalysis;

namespace FastBroker.Journal.Internal;

/// <summary>Throws from out-of-line methods so the hot paths stay small enough to inline.</summary>
internal static class ThrowHelper
{
    [DoesNotReturn]
    internal static void ThrowReservationExceeded(long needed, long left) =>
        throw new InvalidOperationException($"Batch reservation exceeded: the record needs {needed} bytes, {left} reserved bytes are left (or the key exceeds 65535 bytes).");

    [DoesNotReturn]
    internal static void ThrowCorruptRecord(string path, long position, long expectedOffset, string reason) =>
        throw new JournalCorruptionException(path, position, expectedOffset, reason);
}
