using FastBroker.Engine;
using FastBroker.Filtering;

namespace FastBroker;

// Header filters and TTL expiry: which messages a subscription skips.
public sealed partial class Subscription
{
    /// <summary>
    /// The filters as UTF-8 (name, value) pairs, one per header name. Each is checked by the rules the server and the
    /// .NET client share (<see cref="HeaderFilterRules"/>: text that is not valid UTF-16, a filter no message can carry,
    /// one on <c>fb-expires</c> or <c>fb-producer</c>, two values for one name, which an
    /// <see cref="IReadOnlyDictionary{TKey, TValue}"/> may list), refused in the same words. A filter takes one value per
    /// name, as the wire protocol's SUBSCRIBE does (docs/protocol.md): two values for one name are refused rather than
    /// read as an AND that only a message repeating the header passes; the same value twice is one filter.
    /// </summary>
    private static (byte[] Name, byte[] Value)[] EncodeFilters(IReadOnlyDictionary<string, string>? filters)
    {
        if (filters is null || filters.Count == 0)
        {
            return [];
        }

        var encoded = new List<(byte[] Name, byte[] Value)>(filters.Count);
        foreach (var (name, value) in filters)
        {
            if (HeaderFilterRules.TryAdd(encoded, name, value) is { } refused)
            {
                throw new BrokerException(BrokerErrorCode.InvalidArgument, refused);
            }
        }

        return [.. encoded];
    }

    private bool Passes(scoped in MessageView m, ushort flags, TopicState topic)
    {
        if ((flags & Broker.HasExpiryFlag) != 0
            && Engine.ReservedHeaders.TryGetBrokerWritten(m.Headers, Broker.ExpiresHeaderName, out var exp)
            && exp.Length == 8
            && System.Buffers.Binary.BinaryPrimitives.ReadInt64LittleEndian(exp) <= DateTimeOffset.UtcNow.ToUnixTimeMilliseconds())
        {
            _expired++;
            topic.CountExpired(m.Offset);
            return false;
        }

        foreach (var (name, value) in _filters)
        {
            if (!HasHeader(m.Headers, name, value))
            {
                _filtered++;
                return false;
            }
        }

        return true;
    }

    /// <summary>
    /// True when any entry of the header block is <paramref name="name"/> = <paramref name="value"/>: a name may repeat,
    /// and the filter asks whether the message has that value (docs/protocol.md, SUBSCRIBE), not whether its first
    /// entry of the name does. Allocation-free.
    /// </summary>
    private static bool HasHeader(ReadOnlySpan<byte> headers, ReadOnlySpan<byte> name, ReadOnlySpan<byte> value)
    {
        var reader = new Journal.RecordHeaderReader(headers);
        while (reader.TryReadNext(out var n, out var v))
        {
            if (n.SequenceEqual(name) && v.SequenceEqual(value))
            {
                return true;
            }
        }

        return false;
    }
}
