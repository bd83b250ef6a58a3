using System.Text;
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
    /// Encodes a SUBSCRIBE's filters (a header block) from name/value pairs. A filter no message can carry (a name that
    /// is empty or longer than 255 bytes, a value longer than 65535) cannot be sent either: it is refused here, nothing
    /// sent, as the embedded broker refuses it, with <see cref="ErrorCode.InvalidArgument"/> and the broker's words.
    /// </summary>
    /// <exception cref="BrokerClientException">A filter no message can carry.</exception>
    public static byte[] EncodeFilters(IReadOnlyDictionary<string, string>? filters)
    {
        if (filters is null || filters.Count == 0)
        {
            return [];
        }

        var headers = new PublishHeaders();
        foreach (var (name, value) in filters)
        {
            ArgumentNullException.ThrowIfNull(value);
            var nameBytes = Encoding.UTF8.GetByteCount(name);
            if (nameBytes is 0 or > ProtocolConstants.MaxNameLength)
            {
                throw new BrokerClientException(
                    ErrorCode.InvalidArgument,
                    $"SUBSCRIBE: header filter '{Shown(name)}': a header name is 1 to {ProtocolConstants.MaxNameLength} bytes of UTF-8 (this one is {nameBytes}), so no message can carry it");
            }

            var valueBytes = Encoding.UTF8.GetByteCount(value);
            if (valueBytes > ProtocolConstants.MaxShortBytesLength)
            {
                throw new BrokerClientException(
                    ErrorCode.InvalidArgument,
                    $"SUBSCRIBE: header filter '{Shown(name)}': a header value is at most {ProtocolConstants.MaxShortBytesLength} bytes (this one is {valueBytes}), so no message can carry it");
            }

            headers.Add(name, value);
        }

        return headers.Encoded.ToArray();

        // A long name in a reason: its first 32 characters (not splitting a surrogate pair), as the broker shows it.
        static string Shown(string name) => name.Length <= 32 ? name : string.Concat(name.AsSpan(0, char.IsHighSurrogate(name[31]) ? 31 : 32), "…");
    }
}
