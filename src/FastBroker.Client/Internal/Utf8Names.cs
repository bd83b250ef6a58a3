using System.Text;
using FastBroker.Filtering;
using FastBroker.Protocol;

namespace FastBroker.Client.Internal;

/// <summary>
/// UTF-8 encoding of names (topics, patterns, groups, header names) and the other text the client sends, with the wire
/// format's length rules. Text that is not valid UTF-16 (a lone surrogate) is refused with an
/// <see cref="ArgumentException"/> naming the parameter: <see cref="Encoding.UTF8"/> would send it as U+FFFD, so a
/// publish would go to another topic than the one named, or a header be another header.
/// </summary>
internal static class Utf8Names
{
    // Throws EncoderFallbackException on a lone surrogate instead of writing U+FFFD; counting valid text allocates nothing.
    private static readonly UTF8Encoding s_strict = new(encoderShouldEmitUTF8Identifier: false, throwOnInvalidBytes: true);

    /// <summary>Encodes a name that must be 1–255 UTF-8 bytes (str8, not empty).</summary>
    /// <exception cref="ArgumentException">Not valid UTF-16, or out of the length range.</exception>
    public static byte[] Encode(string name, string paramName, bool allowEmpty = false)
    {
        ArgumentNullException.ThrowIfNull(name, paramName);
        var bytes = GetBytes(name, paramName);
        if ((!allowEmpty && bytes.Length == 0) || bytes.Length > ProtocolConstants.MaxNameLength)
        {
            ThrowHelper.ThrowNameLength(paramName, bytes.Length);
        }

        return bytes;
    }

    /// <summary>Byte count of a name, checked to be 1–255 and valid UTF-16 (the publish path: allocates nothing).</summary>
    /// <exception cref="ArgumentException">Not valid UTF-16, or out of the length range.</exception>
    public static int CheckedByteCount(string name, string paramName)
    {
        ArgumentNullException.ThrowIfNull(name, paramName);

        // Fast path: ASCII names of at most 255 chars are at most 255 bytes.
        var length = name.Length <= ProtocolConstants.MaxNameLength && Ascii.IsValid(name) ? name.Length : GetByteCount(name, paramName);
        if (length is 0 or > ProtocolConstants.MaxNameLength)
        {
            ThrowHelper.ThrowNameLength(paramName, length);
        }

        return length;
    }

    /// <summary>The UTF-8 byte count of <paramref name="text"/>, refusing text that is not valid UTF-16.</summary>
    /// <exception cref="ArgumentException">A lone surrogate, named by <paramref name="paramName"/> and its index.</exception>
    public static int GetByteCount(string text, string paramName)
    {
        try
        {
            return s_strict.GetByteCount(text);
        }
        catch (EncoderFallbackException)
        {
            ThrowHelper.ThrowNotUtf16(paramName, text);
            return 0;
        }
    }

    /// <summary>
    /// Encodes the name of a header to look up in a received message into <paramref name="utf8"/>: its byte length, or
    /// -1 when it is longer than <paramref name="utf8"/> (no header can have it). A name that is not valid UTF-16 is
    /// refused: <see cref="Encoding.UTF8"/> would look up U+FFFD instead, and find a header with that name. Nothing is
    /// allocated for a valid name.
    /// </summary>
    /// <exception cref="ArgumentException">A lone surrogate, named by <paramref name="paramName"/> and its index.</exception>
    public static int EncodeLookupName(string name, string paramName, Span<byte> utf8)
    {
        ArgumentNullException.ThrowIfNull(name, paramName);
        int count;
        try
        {
            count = s_strict.GetByteCount(name);
        }
        catch (EncoderFallbackException)
        {
            ThrowHelper.ThrowNotUtf16(paramName, name, lookup: true);
            return -1;
        }

        return count > utf8.Length ? -1 : Encoding.UTF8.GetBytes(name, utf8);
    }

    /// <summary>Encodes <paramref name="text"/> as UTF-8, refusing text that is not valid UTF-16.</summary>
    /// <exception cref="ArgumentException">A lone surrogate, named by <paramref name="paramName"/> and its index.</exception>
    public static byte[] GetBytes(string text, string paramName)
    {
        try
        {
            return s_strict.GetBytes(text);
        }
        catch (EncoderFallbackException)
        {
            ThrowHelper.ThrowNotUtf16(paramName, text);
            return [];
        }
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
