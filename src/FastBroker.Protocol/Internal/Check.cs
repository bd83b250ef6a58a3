namespace FastBroker.Protocol.Internal;

/// <summary>Argument checks of the writers: a frame the parser would reject is a bug at the writer, so throw.</summary>
internal static class Check
{
    public static void Name(ReadOnlySpan<byte> value, string paramName, bool allowEmpty)
    {
        if (value.Length > ProtocolConstants.MaxNameLength)
        {
            ThrowHelper.ThrowTooLong(paramName, value.Length, ProtocolConstants.MaxNameLength);
        }

        if (!allowEmpty && value.IsEmpty)
        {
            ThrowHelper.ThrowEmpty(paramName);
        }
    }

    public static void Short(ReadOnlySpan<byte> value, string paramName)
    {
        if (value.Length > ProtocolConstants.MaxShortBytesLength)
        {
            ThrowHelper.ThrowTooLong(paramName, value.Length, ProtocolConstants.MaxShortBytesLength);
        }
    }

    public static void NonZero(uint value, string paramName)
    {
        if (value == 0)
        {
            ThrowHelper.ThrowZero(paramName);
        }
    }

    /// <summary>Checks the lengths of a message block and returns its encoded size.</summary>
    public static long Message(ReadOnlySpan<byte> key, ReadOnlySpan<byte> headers, ReadOnlySpan<byte> payload)
    {
        Short(key, "key");
        return MessageBlock.GetLength(key.Length, headers.Length, payload.Length);
    }
}
