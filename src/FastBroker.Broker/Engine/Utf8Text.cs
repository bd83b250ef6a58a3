using System.Diagnostics.CodeAnalysis;
using System.Text;

namespace FastBroker.Engine;

/// <summary>
/// UTF-8 encoding of the text the embedded broker stores as bytes (header names and text values, a NACK's error). Text
/// that is not valid UTF-16 (a lone surrogate) is refused with an <see cref="ArgumentException"/> naming the parameter,
/// as the .NET client refuses it: <see cref="Encoding.UTF8"/> would write it as U+FFFD, so a header would be another
/// header. Valid text is counted and encoded without allocating.
/// </summary>
internal static class Utf8Text
{
    // Throws EncoderFallbackException on a lone surrogate instead of writing U+FFFD; counting valid text allocates nothing.
    private static readonly UTF8Encoding s_strict = new(encoderShouldEmitUTF8Identifier: false, throwOnInvalidBytes: true);

    /// <summary>The UTF-8 byte count of <paramref name="text"/>, refusing text that is not valid UTF-16.</summary>
    /// <exception cref="ArgumentException">A lone surrogate, named by <paramref name="paramName"/> and its index.</exception>
    public static int GetByteCount(string text, string paramName)
    {
        ArgumentNullException.ThrowIfNull(text, paramName);
        try
        {
            return s_strict.GetByteCount(text);
        }
        catch (EncoderFallbackException)
        {
            ThrowNotUtf16(paramName, text);
            return 0;
        }
    }

    /// <summary>Encodes text already counted by <see cref="GetByteCount"/> (valid, so this cannot throw) into <paramref name="destination"/>.</summary>
    public static int GetBytes(string text, Span<byte> destination) => s_strict.GetBytes(text, destination);

    /// <summary>Encodes <paramref name="text"/>, refusing text that is not valid UTF-16.</summary>
    /// <exception cref="ArgumentException">A lone surrogate, named by <paramref name="paramName"/> and its index.</exception>
    public static byte[] GetBytes(string text, string paramName)
    {
        var bytes = new byte[GetByteCount(text, paramName)];
        s_strict.GetBytes(text, bytes);
        return bytes;
    }

    /// <summary>Refuses <paramref name="text"/> (null is fine) when it is not valid UTF-16.</summary>
    /// <exception cref="ArgumentException">A lone surrogate, named by <paramref name="paramName"/> and its index.</exception>
    public static void EnsureValid(string? text, string paramName)
    {
        if (text is not null)
        {
            GetByteCount(text, paramName);
        }
    }

    /// <summary>
    /// The first <paramref name="maxChars"/> characters of <paramref name="text"/>, one fewer when the last would be the
    /// first half of a surrogate pair (a cut there would leave a lone surrogate).
    /// </summary>
    public static string Truncate(string text, int maxChars)
        => text.Length <= maxChars ? text : text[..(char.IsHighSurrogate(text[maxChars - 1]) ? maxChars - 1 : maxChars)];

    [DoesNotReturn]
    private static void ThrowNotUtf16(string paramName, string text)
        => throw new ArgumentException($"Must be valid UTF-16 text: the lone surrogate at index {LoneSurrogateIndex(text)} has no UTF-8 encoding (written as U+FFFD it would be other text).", paramName);

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
}
