using System.Text;
using FastBroker.Filtering;
using FastBroker.Protocol;

namespace FastBroker.Client.Internal;

/// <summary>UTF-8 encoding of names (topics, patterns, groups, header names) with the wire format's length rules.</summary>
internal static class Utf8Names
{
    /// <summary>Encodes a name that must be 1–255 UTF-8 bytes (str8, not empty).</summary>
    public static byte[] Encode(string name, string paramName, bool allowEmpty = false)
    {
        ArgumentNullException.ThrowIfNull(name, paramName);
        var bytes = Encoding.UTF8.GetBytes(name);
        if ((!allowEmpty && bytes.Length == 0) || bytes.Length > ProtocolConstants.MaxNameLength)
        {
            ThrowHelper.ThrowNameLength(paramName, bytes.Length);
        }

        return bytes;
    }

    /// <summary>Byte count of a name, checked to be 1–255.</summary>
    public static int CheckedByteCount(string name, string paramName)
    {
        ArgumentNullException.ThrowIfNull(name, paramName);

        // Fast path: ASCII names of at most 255 chars are at most 255 bytes.
        var length = name.Length <= ProtocolConstants.MaxNameLength && Ascii.IsValid(name) ? name.Length : Encoding.UTF8.GetByteCount(name);
        if (length is 0 or > ProtocolConstants.MaxNameLength)
        {
            ThrowHelper.ThrowNameLength(paramName, length);
        }

        return length;
    }

    /// <summary>
    /// Encodes a SUBSCRIBE's filters (a header block) from name/value pairs, one entry per header name. A filter the
    /// embedded broker and the server refuse (<see cref="HeaderFilterRules"/>: text that is not valid UTF-16, a filter no
    /// message can carry, one on <c>fb-expires</c> or <c>fb-producer</c>, two values for one name, which an
    /// <see cref="IReadOnlyDictionary{TKey, TValue}"/> may list) is refused here, nothing sent, with
    /// <see cref="ErrorCode.InvalidArgument"/> and the server's words (the broker's after <c>SUBSCRIBE: </c>); the same
    /// value twice is one filter, sent once.
    /// </summary>
    /// <exception cref="BrokerClientException">A filter the broker refuses.</exception>
    public static byte[] EncodeFilters(IReadOnlyDictionary<string, string>? filters)
    {
        if (filters is null || filters.Count == 0)
        {
            return [];
        }

        var entries = new List<(byte[] Name, byte[] Value)>(filters.Count);
        foreach (var (name, value) in filters)
        {
            if (HeaderFilterRules.TryAdd(entries, name, value) is { } refused)
            {
                throw new BrokerClientException(ErrorCode.InvalidArgument, "SUBSCRIBE: " + refused);
            }
        }

        var length = 0;
        foreach (var (n, v) in entries)
        {
            length += HeaderBlockWriter.GetEntryLength(n.Length, v.Length);
        }

        var block = new byte[length];
        var writer = new HeaderBlockWriter(block);
        foreach (var (n, v) in entries)
        {
            writer.TryAdd(n, v);
        }

        return block;
    }
}
