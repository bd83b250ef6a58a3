namespace FastBroker.Server.Internal;

/// <summary>
/// Names a client sent, as an ERROR's reason quotes them: control characters as '?', at most 64 characters then "…",
/// the rules of the broker's own reasons (<c>TopicName.Printable</c>), so a name that fails validation cannot put a line
/// break, a terminal escape or 255 characters into a reason a client prints or logs.
/// </summary>
internal static class ClientText
{
    private const int MaxQuoted = 64;

    public static string Quote(string text)
    {
        var shown = text.Length > MaxQuoted ? text[..(char.IsHighSurrogate(text[MaxQuoted - 1]) ? MaxQuoted - 1 : MaxQuoted)] + "…" : text;
        return string.Create(shown.Length, shown, static (dst, src) =>
        {
            for (var i = 0; i < src.Length; i++)
            {
                dst[i] = char.IsControl(src[i]) ? '?' : src[i];
            }
        });
    }
}
