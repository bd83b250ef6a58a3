using System.Diagnostics.CodeAnalysis;
using System.Globalization;
using System.Net;
using System.Net.Sockets;

namespace FastBroker.Replication.Internal;

/// <summary>
/// A <c>host:port</c> a node connects to (its peer): an IP address, taken as it is, or a host name, resolved again at
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

    /// <summary>The host: an IP address as given, or a host name.</summary>
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
    /// <paramref name="value"/> as an address: <c>host:port</c>, the host an IP address (an IPv6 one in brackets) or a
    /// host name (labels of 1 to 63 ASCII letters, digits, '-' or '_', not beginning or ending with '-', joined by
    /// dots, at most 253 characters, the last label not all digits), the port 1 to 65535. False for anything else.
    /// </summary>
    public static bool TryParse(string? value, [NotNullWhen(true)] out PeerAddress? address)
    {
        address = null;
        var colon = value?.LastIndexOf(':') ?? -1;
        if (value is null || colon <= 0
            || !int.TryParse(value.AsSpan(colon + 1), NumberStyles.None, CultureInfo.InvariantCulture, out var port) || port is < 1 or > 65535)
        {
            return false;
        }

        var host = value[..colon];
        if (IPAddress.TryParse(host, out var literal))
        {
            address = new PeerAddress(value, host, port, literal);
            return true;
        }

        if (!IsHostName(host))
        {
            return false;
        }

        address = new PeerAddress(value, host, port, null);
        return true;
    }

    /// <summary>
    /// As <see cref="TryParse"/>, with <paramref name="log"/> as its <see cref="Log"/>; throws
    /// <see cref="ArgumentException"/> naming <paramref name="option"/> otherwise.
    /// </summary>
    public static PeerAddress Parse(string? value, string option, Action<string>? log = null) =>
        TryParse(value, out var address)
            ? new PeerAddress(address.Text, address.Host, address.Port, address._literal) { Log = log }
            : throw new ArgumentException($"{option} '{value}' is not {ReplicationOptions.EndpointRule}.", option);

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
            found = await Dns.GetHostAddressesAsync(Host, cancellationToken).WaitAsync(cancellationToken).ConfigureAwait(false);
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
