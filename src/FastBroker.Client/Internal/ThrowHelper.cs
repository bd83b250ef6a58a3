using System.Diagnostics.CodeAnalysis;
using FastBroker.Protocol;

namespace FastBroker.Client.Internal;

/// <summary>Throws from a separate, never-inlined frame so the publish path stays small.</summary>
internal static class ThrowHelper
{
    [DoesNotReturn]
    public static void ThrowNameLength(string paramName, int length)
        => throw new ArgumentOutOfRangeException(paramName, length, "Must be 1 to 255 UTF-8 bytes.");

    /// <summary>
    /// Text with a lone surrogate, which has no UTF-8 encoding: sent as U+FFFD it would name another topic or header
    /// (<paramref name="lookup"/>: looked up as U+FFFD, a header name would find another header).
    /// </summary>
    [DoesNotReturn]
    public static void ThrowNotUtf16(string paramName, string text, bool lookup = false)
        => throw new ArgumentException(
            $"Must be valid UTF-16 text: the lone surrogate at index {LoneSurrogateIndex(text)} has no UTF-8 encoding "
            + (lookup ? "(looked up as U+FFFD it would find another header); no header can have this name." : "(sent as U+FFFD it would name something else); nothing was sent."),
            paramName);

    [DoesNotReturn]
    public static void ThrowTooLong(string paramName, int length, int max)
        => throw new ArgumentOutOfRangeException(paramName, length, $"Longer than the {max} bytes the wire format allows.");

    [DoesNotReturn]
    public static void ThrowFailed(Exception failure)
        => throw failure;

    [DoesNotReturn]
    public static void ThrowNotGranted(ProtocolFeatures feature)
        => throw NotGranted(feature);

    public static BrokerClientException NotGranted(ProtocolFeatures feature)
        => new(ErrorCode.UnexpectedFrame, $"the server did not grant the {feature} feature");

    /// <summary>RetryAsync without IdempotentProducer: a retry would carry no producer id and sequence, so nothing deduplicates it.</summary>
    public static BrokerClientException RetryNotIdempotent()
        => new(ErrorCode.UnexpectedFrame, "the server did not grant the IdempotentProducer feature: RetryAsync would send the message as a new one, and the primary, which already holds it, would store it twice; nothing was sent");

    private static int LoneSurrogateIndex(string text)
    {
        for (var i = 0; i < text.Length; i++)
        {
            if (char.IsHighSurrogate(text[i]) && i + 1 < text.Length && char.IsLowSurrogate(text[i + 1]))
            {
                i++;
            }
            else if (char.IsSurrogate(text[i]))
            {
                return i;
            }
        }

        return -1;
    }

    public static BrokerClientException MessageTooLarge(string topic, long frameSize, long max)
        => new(ErrorCode.MessageTooLarge, $"a message to '{topic}' needs a {frameSize}-byte frame; the server accepts at most {max}");
}
