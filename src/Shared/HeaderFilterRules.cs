using System.Text;

namespace FastBroker.Filtering;

/// <summary>
/// One source file compiled into the broker, the server and the client (linked from <c>src/Shared</c>, internal to
/// each): which header filters (<c>name = value</c>, UTF-8) a subscription takes, and the reason one is refused, so the
/// embedded broker's <c>SubscriptionOptions.HeaderFilters</c>, the server's SUBSCRIBE and the .NET client's
/// <c>SubscribeOptions.Filters</c> refuse the same filters in the same words (the server and the client put
/// <c>SUBSCRIBE: </c> before them; docs/protocol.md, SUBSCRIBE). A reason quotes a caller's name or value by at most
/// <see cref="MaxQuotedChars"/> characters (<see cref="Quote"/>). Subscribe path only, never per message.
/// </summary>
internal static class HeaderFilterRules
{
    /// <summary>The header block's limit on a name (<c>str8</c>): no message carries a longer one.</summary>
    public const int MaxNameBytes = 255;

    /// <summary>The header block's limit on a value (<c>bytes16</c>): no message carries a longer one.</summary>
    public const int MaxValueBytes = ushort.MaxValue;

    /// <summary>
    /// How many characters of a caller's name or value a reason quotes: a longer one is cut there (not splitting a
    /// surrogate pair) and followed by <c>… (N characters)</c>, so a 10 KB name gives a reason of about 200 characters,
    /// not a 10 KB exception message or ERROR frame.
    /// </summary>
    public const int MaxQuotedChars = 64;

    private static readonly UTF8Encoding s_strictUtf8 = new(encoderShouldEmitUTF8Identifier: false, throwOnInvalidBytes: true);

    /// <summary>
    /// Encodes one filter as UTF-8: null when it is taken, else why it is refused (for <c>InvalidArgument</c>). Refused:
    /// text that is not valid UTF-16 (a lone surrogate would become U+FFFD and make two names one), a filter no message
    /// can carry (a name empty or over 255 bytes, a value over 65535), and a filter on <c>fb-expires</c> or
    /// <c>fb-producer</c>: the broker writes those itself with a binary value per message (an expiry time; a producer
    /// id and sequence), which an exact text value cannot select messages by (a TTL, one producer's messages).
    /// </summary>
    public static string? TryEncode(string name, string value, out byte[] utf8Name, out byte[] utf8Value)
    {
        ArgumentNullException.ThrowIfNull(name);
        ArgumentNullException.ThrowIfNull(value);
        try
        {
            utf8Name = s_strictUtf8.GetBytes(name);
            utf8Value = s_strictUtf8.GetBytes(value);
        }
        catch (EncoderFallbackException)
        {
            utf8Name = utf8Value = [];
            return $"header filter '{Quote(name)}': names and values must be valid UTF-16 text (a lone surrogate cannot be encoded as UTF-8)";
        }

        if (utf8Name.Length is 0 or > MaxNameBytes)
        {
            return $"header filter '{Quote(name)}': a header name is 1 to {MaxNameBytes} bytes of UTF-8 (this one is {utf8Name.Length}), so no message can carry it";
        }

        if (utf8Value.Length > MaxValueBytes)
        {
            return $"header filter '{Quote(name)}': a header value is at most {MaxValueBytes} bytes (this one is {utf8Value.Length}), so no message can carry it";
        }

        if (utf8Name.AsSpan().SequenceEqual("fb-producer"u8))
        {
            return "header filter 'fb-producer': the broker writes this header itself (a binary producer id and sequence, one per message), so a filter cannot select messages by it";
        }

        if (utf8Name.AsSpan().SequenceEqual("fb-expires"u8))
        {
            return "header filter 'fb-expires': the broker writes this header itself (a binary expiry time in Unix milliseconds, for a TTL), so a filter cannot select messages by it";
        }

        return null;
    }

    /// <summary>
    /// Why a filter whose value arrived as bytes that are not UTF-8 (a SUBSCRIBE's <c>bytes16</c> value; names are
    /// <c>str8</c>, checked by the parser) is refused: the broker compares a value as text. Names the filter by its
    /// <paramref name="name"/>, quoted as every reason quotes it.
    /// </summary>
    public static string ValueNotUtf8(string name) =>
        $"header filter '{Quote(name)}': a value must be UTF-8 text (the broker compares values as text), and this one is not";

    /// <summary>
    /// Checks and encodes one filter (<see cref="TryEncode"/>) and adds it to <paramref name="taken"/>, the filters
    /// of one subscription so far: null when it is taken, else why the subscription is refused. A filter takes one value
    /// per header name: the same name and value again is the same filter (not added twice), the same name with another
    /// value is refused (<c>header filter 'ccy' is given two values, 'USD' and 'EUR': …</c>), rather than read as an AND
    /// that only a message repeating the header passes. Names compare as UTF-8 bytes, as headers do.
    /// </summary>
    public static string? TryAdd(List<(byte[] Name, byte[] Value)> taken, string name, string value)
    {
        ArgumentNullException.ThrowIfNull(taken);
        if (TryEncode(name, value, out var utf8Name, out var utf8Value) is { } refused)
        {
            return refused;
        }

        foreach (var (takenName, takenValue) in taken)
        {
            if (takenName.AsSpan().SequenceEqual(utf8Name))
            {
                return takenValue.AsSpan().SequenceEqual(utf8Value)
                    ? null
                    : $"header filter '{Quote(name)}' is given two values, '{Quote(Encoding.UTF8.GetString(takenValue))}' and '{Quote(value)}': a subscription filters each header name on one value";
            }
        }

        taken.Add((utf8Name, utf8Value));
        return null;
    }

    /// <summary>
    /// A caller's name or value as a reason quotes it: as it is up to <see cref="MaxQuotedChars"/> characters, else its
    /// first 64 (63 when the 64th would split a surrogate pair) and <c>… (N characters)</c>, N its full length in UTF-16
    /// characters.
    /// </summary>
    public static string Quote(string text)
    {
        if (text.Length <= MaxQuotedChars)
        {
            return text;
        }

        var kept = char.IsHighSurrogate(text[MaxQuotedChars - 1]) ? MaxQuotedChars - 1 : MaxQuotedChars;
        return $"{text.AsSpan(0, kept)}… ({text.Length} characters)";
    }
}
