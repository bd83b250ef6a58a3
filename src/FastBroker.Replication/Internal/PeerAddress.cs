using System.Diagnostics.CodeAnalysis;
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using FastBroker.Net;

namespace FastBroker.Replication.Internal;

/// <summary>
/// A <c>host:port</c> a node connects to (its peer, the witness: <see cref="WitnessClient"/>), and the one parser of
/// every such endpoint and of the addresses the nodes and the witness bind (<see cref="TryParseHost"/>): an IP address,
/// taken as it is, or a host name, resolved again at
/// every connect attempt (<see cref="ResolveAsync"/>), so that a peer whose name moves to another address (a DNS change,
/// a replaced host) is followed at the next reconnect. The syntax is checked when the options are validated; whether a
/// name resolves is only known when connecting, and a name that does not is a failed connect attempt, retried as for a
/// peer that cannot be reached.
/// </summary>
internal sealed class PeerAddress
{
    private readonly IPAddress? _literal;
    private readonly Lock _outcomeLock = new();
    private string? _lastOutcome;

    private PeerAddress(string text, string host, int port, IPAddress? literal)
    {
        Text = text;
        Host = host;
        Port = port;
        _literal = literal;
    }

    /// <summary>The address as given (<c>standby-1:7410</c>).</summary>
    public string Text { get; }

    /// <summary>The host: an IP address as given (an IPv6 one without its brackets), or a host name.</summary>
    public string Host { get; }

    /// <summary>The port, 1 to 65535.</summary>
    public int Port { get; }

    /// <summary>True when the host is a name (resolved at every connect), false for an IP address.</summary>
    public bool IsName => _literal is null;

    /// <summary>
    /// Told a line when what a host name resolves to changes: it does not resolve (once per reason, not per attempt), or
    /// it resolves to other addresses than last time (the first time included). Never for an IP address.
    /// </summary>
    public Action<string>? Log { get; private init; }

    /// <summary>
    /// <paramref name="value"/> as an address (<see cref="ReplicationOptions.EndpointRule"/>): <c>host:port</c>, the host
    /// an IPv4 address of four decimal numbers 0 to 255 (<c>10.0.0.2</c>), an IPv6 address in brackets
    /// (<c>[fd00::2]</c>) or a host name (<see cref="TryParseHost"/>), the port 1 to 65535. False for anything else.
    /// </summary>
    public static bool TryParse(string? value, [NotNullWhen(true)] out PeerAddress? address) => TryParse(value, out address, out _);

    /// <summary>As <see cref="TryParse(string?, out PeerAddress?)"/>, with why <paramref name="value"/> is refused ("expected …").</summary>
    public static bool TryParse(string? value, [NotNullWhen(true)] out PeerAddress? address, [NotNullWhen(false)] out string? reason)
    {
        address = null;
        const string HostPort = "expected host:port (port 1 to 65535)";
        string host;
        int colon;
        if (value is ['[', ..])
        {
            // [fd00::2]:7410: the brackets end the address, so its colons are never taken for the port's.
            var close = value.IndexOf(']', StringComparison.Ordinal);
            if (close < 0 || close + 1 == value.Length || value[close + 1] != ':')
            {
                reason = "expected an IPv6 address in brackets followed by :port ([::1]:7410)";
                return false;
            }

            host = value[1..close];
            colon = close + 1;
        }
        else
        {
            colon = value?.LastIndexOf(':') ?? -1;
            if (value is null || colon <= 0)
            {
                reason = HostPort;
                return false;
            }

            host = value[..colon];
            if (host.Contains(':', StringComparison.Ordinal))
            {
                // ::1:7410 is ::1 port 7410 or the address ::1:7410 with no port: either reading may be the wrong one.
                reason = $"expected an IPv6 address in brackets ([{host}]:port): without them the port cannot be told apart from the address";
                return false;
            }
        }

        if (!int.TryParse(value.AsSpan(colon + 1), NumberStyles.None, CultureInfo.InvariantCulture, out var port) || port is < 1 or > 65535)
        {
            reason = HostPort;
            return false;
        }

        IPAddress? literal;
        if (value[0] == '[')
        {
            if (!HostAddress.TryParseIPv6(host, out literal))
            {
                reason = $"expected an IPv6 address between the brackets, not '{host}'";
                return false;
            }
        }
        else if (!TryParseHost(host, out literal, out reason))
        {
            return false;
        }

        address = new PeerAddress(value, host, port, literal);
        reason = null;
        return true;
    }

    /// <summary>
    /// <paramref name="host"/> as a host without a port (an address to bind, <see cref="ReplicationOptions.Host"/>,
    /// <see cref="WitnessOptions.Host"/>, the broker's <c>ServerOptions.Host</c>), read by <see cref="HostAddress.TryParse"/>:
    /// an IPv4 address of four decimal numbers 0 to 255, an IPv6 address (brackets optional) or a host name.
    /// <paramref name="literal"/> is the IP address, or null for a name.
    /// </summary>
    public static bool TryParseHost(string? host, out IPAddress? literal, [NotNullWhen(false)] out string? reason) =>
        HostAddress.TryParse(host, out literal, out reason);

    /// <summary>
    /// As <see cref="TryParse(string?, out PeerAddress?, out string?)"/>, with <paramref name="log"/> as its <see cref="Log"/>; throws
    /// <see cref="ArgumentException"/> naming <paramref name="option"/> otherwise.
    /// </summary>
    public static PeerAddress Parse(string? value, string option, Action<string>? log = null) =>
        TryParse(value, out var address, out var reason)
            ? new PeerAddress(address.Text, address.Host, address.Port, address._literal) { Log = log }
            : throw new ArgumentException($"{option} '{value}' is not {ReplicationOptions.EndpointRule}: {reason}.", option);

    /// <summary>
    /// The addresses to try, in order: the IP address, or what the host name resolves to now. Throws
    /// <see cref="SocketException"/> whose message names the host name when it does not resolve, and
    /// <see cref="OperationCanceledException"/> when <paramref name="cancellationToken"/> fires first.
    /// </summary>
    public async ValueTask<IPAddress[]> ResolveAsync(CancellationToken cancellationToken)
    {
        if (_literal is not null)
        {
            return [_literal];
        }

        IPAddress[] found;
        try
        {
            // WaitAsync: the token bounds the wait even where the resolver itself cannot be cancelled.
            found = await HostAddress.Resolver(Host, cancellationToken).WaitAsync(cancellationToken).ConfigureAwait(false);
        }
        catch (SocketException ex)
        {
            throw Unresolved(ex.SocketErrorCode);
        }

        if (found.Length == 0)
        {
            throw Unresolved(SocketError.HostNotFound);
        }

        Outcome($"'{Host}' resolves to {string.Join(", ", found.Select(a => a.ToString()).Order(StringComparer.Ordinal))}");
        return found;
    }

    /// <summary>The address as given for a host name, the endpoint (as <see cref="IPEndPoint"/> writes it) for an IP address.</summary>
    public override string ToString() => _literal is null ? Text : new IPEndPoint(_literal, Port).ToString();

    private SocketException Unresolved(SocketError code)
    {
        var message = $"the host name '{Host}' does not resolve ({code})";
        Outcome($"{message}; it is resolved again at every connect attempt");
        return new SocketException((int)code, message);
    }

    private void Outcome(string line)
    {
        lock (_outcomeLock)
        {
            if (line == _lastOutcome)
            {
                return;
            }

            _lastOutcome = line;
        }

        Log?.Invoke($"{Text}: {line}");
    }
}
