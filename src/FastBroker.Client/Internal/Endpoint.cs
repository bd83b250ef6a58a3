using System.Globalization;

namespace FastBroker.Client.Internal;

/// <summary>A parsed <c>host:port</c> (IPv6 hosts in brackets).</summary>
internal readonly record struct Endpoint(string Host, int Port)
{
    public static Endpoint Parse(string text)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(text);
        var colon = text.LastIndexOf(':');
        if (colon <= 0 || colon == text.Length - 1
            || !int.TryParse(text.AsSpan(colon + 1), NumberStyles.None, CultureInfo.InvariantCulture, out var port) || port is < 1 or > 65535)
        {
            throw new ArgumentException($"Endpoint '{text}' is not host:port.", nameof(text));
        }

        var host = text[..colon];
        if (host.StartsWith('[') && host.EndsWith(']'))
        {
            host = host[1..^1];
        }

        return new Endpoint(host, port);
    }

    public override string ToString() => Host.Contains(':', StringComparison.Ordinal) ? $"[{Host}]:{Port}" : $"{Host}:{Port}";
}
