using FastBroker.Journal;

namespace FastBroker.Engine;

/// <summary>
/// The header names the broker writes into a stored message itself and later reads back by name:
/// <see cref="Broker.ExpiresHeader"/> (a TTL) and <see cref="Broker.ProducerHeader"/> (an idempotent producer's id and
/// sequence, from which a restart or a promoted standby rebuilds the deduplication window). A publish that carries
/// either is refused: a forged <c>fb-producer</c> would make another producer's sequence look stored, and its real
/// message would then be confirmed as a duplicate and never written. The other <c>fb-</c> names pass:
/// <c>fb-priority</c>, <c>fb-reply-to</c> and <c>fb-correlation-id</c> are the publisher's to set, and the
/// <c>fb-dlq-*</c> history of a dead letter is only informative (re-publishing a dead letter with its headers is a
/// legitimate retry).
/// </summary>
/// <remarks>
/// The broker appends its entries after the publisher's, so its own entry is the <b>last</b> of its name; readers
/// take that one (<see cref="TryGetBrokerWritten"/>), which also reads journals written before publishes carrying
/// these names were refused.
/// </remarks>
internal static class ReservedHeaders
{
    /// <summary>Why a publish carrying <c>fb-producer</c> is refused (a constant: the refusal allocates nothing).</summary>
    internal const string ProducerRefusal = "header 'fb-producer' is reserved: the broker writes it for idempotent publishes (use the producer id and sequence of the publish instead)";

    /// <summary>Why a publish carrying <c>fb-expires</c> is refused.</summary>
    internal const string ExpiresRefusal = "header 'fb-expires' is reserved: the broker writes it when a publish has a TTL (use the TTL instead)";

    /// <summary>
    /// The refusal reason when <paramref name="block"/> carries a broker-written name, else null. Allocation-free;
    /// a malformed block is read up to its first bad entry (the callers' blocks are well-formed).
    /// </summary>
    public static string? FindBrokerWritten(ReadOnlySpan<byte> block)
    {
        var reader = new RecordHeaderReader(block);
        while (reader.TryReadNext(out var name, out _))
        {
            if (name.SequenceEqual(Broker.ProducerHeaderName))
            {
                return ProducerRefusal;
            }

            if (name.SequenceEqual(Broker.ExpiresHeaderName))
            {
                return ExpiresRefusal;
            }
        }

        return null;
    }

    /// <summary>The broker's own entry called <paramref name="name"/>: the last one of that name in the stored block.</summary>
    public static bool TryGetBrokerWritten(ReadOnlySpan<byte> block, ReadOnlySpan<byte> name, out ReadOnlySpan<byte> value)
    {
        var found = false;
        value = default;
        var reader = new RecordHeaderReader(block);
        while (reader.TryReadNext(out var n, out var v))
        {
            if (n.SequenceEqual(name))
            {
                value = v;
                found = true;
            }
        }

        return found;
    }
}
