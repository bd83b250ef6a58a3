using System.Diagnostics.CodeAnalysis;
using System.Globalization;
using System.Net;
using System.Net.Sockets;

namespace FastBroker.Net;

/// <summary>
/// The one reading of a host (an address without a port) that every listener binds (the broker's
/// <c>ServerOptions.Host</c>, the admin endpoint, a node's replication listener, the witness) and that the nodes' peer and
/// witness endpoints carry (<see cref="TryParse"/>), and the one rule by which a listener picks the address it binds
/// (<see cref="ResolveListenAsync"/>).
/// </summary>
internal static class HostAddress
{
    /// <summary>
    /// The rule every listener follows, as the docs state it: an IP address is bound as given; a host name is resolved
    /// once, at start, and the listener binds the first IPv4 address it resolves to, or its first address when it has no
    /// IPv4 one. So <c>localhost</c> binds 127.0.0.1 whether or not it also resolves to ::1 (and whichever the resolver
    /// lists first), as the default host does.
    /// </summary>
    public const string ListenRule = "an IP address is bound as given; a host name binds the first IPv4 address it resolves to, or its first address if it has no IPv4 one";

    /// <summary>
    /// Resolves a host name (tests replace it to stand for a name that resolves to several addresses in a given order;
    /// one that answers for its own name only and passes the rest to <see cref="Dns"/> leaves other tests alone).
    /// </summary>
    internal static Func<string, CancellationToken, Task<IPAddress[]>> Resolver { get; set; } = Dns.GetHostAddressesAsync;

    /// <summary>
    /// <paramref name="host"/> as a host without a port: an IPv4 address of four decimal numbers 0 to 255, each without
    /// leading zeros (<c>10.0.0.2</c>); an IPv6 address, in brackets or not (<c>::</c>, <c>[::1]</c>); or a host name
    /// (labels of 1 to 63 ASCII letters, digits, '-' or '_', not beginning or ending with '-', joined by dots, at most
    /// 253 characters, the last label not all digits, and not a form the resolver reads as an IP address, such as
    /// <c>0x7f000001</c>). <paramref name="literal"/> is the IP address, or null for a name. The other forms an IP
    /// address parser takes (<c>127.1</c>, <c>1</c> for 0.0.0.1, <c>010.0.0.1</c> in octal, <c>0x7f.0.0.1</c>) are
    /// refused: written for four numbers they are a typo far more often than meant, and one that connects to, or binds,
    /// another address.
    /// </summary>
    public static bool TryParse(string? host, out IPAddress? literal, [NotNullWhen(false)] out string? reason)
    {
        literal = null;
        reason = null;
        if (string.IsNullOrEmpty(host))
        {
            reason = "expected a host (an IP address or a host name), not an empty one";
            return false;
        }

        if (host.Contains(':', StringComparison.Ordinal) || host[0] == '[')
        {
            var inner = host is ['[', .., ']'] ? host[1..^1] : host;
            if (TryParseIPv6(inner, out literal))
            {
                return true;
            }

            reason = $"expected an IPv6 address, not '{host}'";
            return false;
        }

        if (host.All(c => char.IsAsciiDigit(c) || c == '.'))
        {
            if (TryParseDottedQuad(host, out literal))
            {
                return true;
            }

            reason = $"expected an IPv4 address of four numbers 0 to 255 without leading zeros (10.0.0.2), not '{host}' (a form with parts left out, as 127.1, or in octal is refused: it reads as another address)";
            return false;
        }

        if (!IsHostName(host))
        {
            reason = $"expected a host name (labels of 1 to 63 letters, digits, '-' or '_', not beginning or ending with '-', joined by dots, at most 253 characters, the last label not all digits) or an IP address, not '{host}'";
            return false;
        }

        if (IPAddress.TryParse(host, out _))
        {
            // 0x7f000001: a name by its characters, but the resolver returns it as the address it spells.
            reason = $"expected an IPv4 address of four decimal numbers (10.0.0.2) or a host name, not '{host}', which reads as an IP address in another form";
            return false;
        }

        return true;
    }

    /// <summary>
    /// The address a listener on <paramref name="host"/> binds, by <see cref="ListenRule"/>. <paramref name="host"/> has
    /// been checked by <see cref="TryParse"/> (an options' Validate); <paramref name="option"/> names it in the error.
    /// </summary>
    /// <exception cref="SocketException">
    /// <paramref name="host"/> is a name that does not resolve, or to no address; the message names
    /// <paramref name="option"/> and the name.
    /// </exception>
    /// <exception cref="OperationCanceledException"><paramref name="cancellationToken"/> fired first.</exception>
    public static async Task<IPAddress> ResolveListenAsync(string host, string option, CancellationToken cancellationToken)
    {
        if (TryParse(host, out var literal, out _) && literal is not null)
        {
            return literal;
        }

        IPAddress[] found;
        try
        {
            found = await Resolver(host, cancellationToken).ConfigureAwait(false);
        }
        catch (SocketException ex)
        {
            throw new SocketException((int)ex.SocketErrorCode, $"{option} '{host}': the host name does not resolve ({ex.SocketErrorCode}: {ex.Message}), so there is no address to listen on");
        }

        return Array.Find(found, a => a.AddressFamily == AddressFamily.InterNetwork) ?? found.FirstOrDefault()
            ?? throw new SocketException((int)SocketError.HostNotFound, $"{option} '{host}': the host name resolves to no address, so there is none to listen on");
    }

    /// <summary>An IPv6 address without brackets (<c>::1</c>); false for anything else, an IPv4 address included.</summary>
    public static bool TryParseIPv6(string text, [NotNullWhen(true)] out IPAddress? address)
    {
        address = null;
        return text.Length > 0 && !text.Contains('[', StringComparison.Ordinal) && !text.Contains(']', StringComparison.Ordinal)
            && IPAddress.TryParse(text, out address) && address.AddressFamily == AddressFamily.InterNetworkV6;
    }

    /// <summary>Four decimal numbers 0 to 255 joined by dots, none with a leading zero: the one IPv4 form accepted.</summary>
    private static bool TryParseDottedQuad(string text, [NotNullWhen(true)] out IPAddress? address)
    {
        address = null;
        var parts = text.Split('.');
        if (parts.Length != 4)
        {
            return false;
        }

        var bytes = new byte[4];
        for (var i = 0; i < 4; i++)
        {
            var part = parts[i];
            if (part.Length is 0 or > 3 || (part.Length > 1 && part[0] == '0')
                || !int.TryParse(part, NumberStyles.None, CultureInfo.InvariantCulture, out var number) || number > 255)
            {
                return false;
            }

            bytes[i] = (byte)number;
        }

        address = new IPAddress(bytes);
        return true;
    }

    private static bool IsHostName(string host)
    {
        var name = host.EndsWith('.') ? host[..^1] : host; // a fully qualified name may end in a dot
        if (name.Length is 0 or > 253)
        {
            return false;
        }

        var labels = name.Split('.');
        foreach (var label in labels)
        {
            if (label.Length is 0 or > 63 || label[0] == '-' || label[^1] == '-'
                || !label.All(c => char.IsAsciiLetterOrDigit(c) || c is '-' or '_'))
            {
                return false;
            }
        }

        // 10.0.0.256 is a mistyped IP address, not a name: a top-level label is never all digits.
        return !labels[^1].All(char.IsAsciiDigit);
    }
}
