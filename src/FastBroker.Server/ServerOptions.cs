using System.Text;
using FastBroker.Net;
using FastBroker.Protocol;

namespace FastBroker.Server;

/// <summary>
/// How a <see cref="BrokerServer"/> listens and what it allows. Immutable; start from <see cref="Default"/> and change
/// what you need with <c>with</c>. docs/server.md explains every setting.
/// </summary>
public sealed record ServerOptions
{
    /// <summary>The documented default port of the binary protocol.</summary>
    public const int DefaultPort = 7400;

    /// <summary>127.0.0.1:7400, 1 MiB frames, 1024 connections, 256 subscriptions each, 10 s heartbeat, no auth, no TLS.</summary>
    public static ServerOptions Default { get; } = new();

    /// <summary>
    /// Address to bind: an IPv4 address of four numbers 0 to 255 (<c>0.0.0.0</c> for every interface, deliberately), an
    /// IPv6 address (<c>::</c>, <c>[::1]</c>) or a host name, resolved at start, which binds the first IPv4 address it
    /// resolves to, or its first address if it has no IPv4 one (<c>localhost</c>: 127.0.0.1), as every listener does
    /// (docs/server.md, "Listen addresses"). <see cref="Validate"/> refuses anything else by name, a shortened IPv4 form
    /// (<c>127.1</c>, <c>0</c>) included; a name that does not resolve fails <see cref="BrokerServer.StartAsync"/> with a
    /// <see cref="System.Net.Sockets.SocketException"/> naming Host and the name.
    /// </summary>
    public string Host { get; init; } = "127.0.0.1";

    /// <summary>TCP port; 0 picks a free one (read it back from <see cref="BrokerServer.EndPoint"/>).</summary>
    public int Port { get; init; } = DefaultPort;

    /// <summary>Largest frame the server accepts (prefix included), announced in WELCOME. At least 64 KiB (the protocol's floor).</summary>
    public int MaxFrameSize { get; init; } = ProtocolConstants.DefaultMaxFrameSize;

    /// <summary>Connections that may complete the handshake at once; the next HELLO gets <c>TooManyConnections</c> (107).</summary>
    public int MaxConnections { get; init; } = 1024;

    /// <summary>Subscriptions plus group memberships per connection (announced in WELCOME); more get <c>TooManySubscriptions</c> (106).</summary>
    public int MaxSubscriptionsPerConnection { get; init; } = 256;

    /// <summary>
    /// Announced in WELCOME; a connection from which nothing arrives for 3× this is closed with <c>IdleTimeout</c> (108),
    /// and one that takes none of the bytes the server is sending for 3× this is dropped (docs/server.md, "Idle").
    /// </summary>
    public TimeSpan HeartbeatInterval { get; init; } = TimeSpan.FromSeconds(10);

    /// <summary>Accepted auth tokens with their publish/subscribe permissions. Empty: no authentication, everything allowed.</summary>
    public IReadOnlyList<AccessToken> Tokens { get; init; } = [];

    /// <summary>A PKCS#12 (.pfx) file with the server certificate and its private key; when set, every connection must speak TLS.</summary>
    public string? TlsCertificatePath { get; init; }

    /// <summary>Password of <see cref="TlsCertificatePath"/>, if any.</summary>
    public string? TlsCertificatePassword { get; init; }

    /// <summary>How long a TLS handshake may take before the connection is dropped (at most <see cref="int.MaxValue"/> ms, about 24 days).</summary>
    public TimeSpan TlsHandshakeTimeout { get; init; } = TimeSpan.FromSeconds(10);

    /// <summary>
    /// How long after its accept a connection may take to complete its handshake (its TLS handshake, if any, and its
    /// HELLO); past it the connection is closed with <c>IdleTimeout</c> (108), whether bytes still trickle in or not. A
    /// peer that has not said who it is holds a connection slot no longer than this. Positive, at most
    /// <see cref="int.MaxValue"/> ms.
    /// </summary>
    public TimeSpan HandshakeTimeout { get; init; } = TimeSpan.FromSeconds(10);

    /// <summary>Announced in WELCOME (at most 255 bytes of UTF-8).</summary>
    public string ServerName { get; init; } = "fastbroker";

    /// <summary>
    /// When true (the default), a confirmation the journaler makes while the connection's writer sleeps is sent by
    /// the journaler thread itself with one non-blocking <c>send</c>, saving the writer a wake-up on the
    /// publish→confirm path; what the socket does not take at once goes to the writer. Plain TCP on Linux only (TLS
    /// and other systems always use the writer). False: every confirmation goes through the writer.
    /// </summary>
    public bool ConfirmsFromJournaler { get; init; } = true;

    /// <summary>
    /// Tests only: feature bits this server does not grant whatever the client asks, so that it answers as a server
    /// that predates them (ProtocolFeatures.OffsetFallback: a SUBSCRIBE's Offset start ignores its fallbackKind).
    /// </summary>
    internal ProtocolFeatures WithheldFeatures { get; init; }

    /// <summary>Tests only: the clock of the log's rate limit (the lines of protocol-error closes and of connections that take no bytes).</summary>
    internal TimeProvider LogClock { get; init; } = TimeProvider.System;

    /// <summary>
    /// Tests only: called on a session's reader or writer at named points of its work with the point and the
    /// connection id (<c>"durable-waiting"</c>: a durable SUBSCRIBE before its name's gate; <c>"durable-subscribed"</c>:
    /// a durable SUBSCRIBE holds its name, not yet its consumer; <c>"init-producer"</c>: an INIT_PRODUCER without an
    /// epoch, before the broker is asked; <c>"deliver"</c>: the writer, before it fetches deliveries for a
    /// subscription or membership, where a throw fails that delivery; <c>"durable-takeover"</c>: a durable SUBSCRIBE refused
    /// its name, under the name's gate, before it takes the name over; <c>"stalled"</c>: the idle timer, before it closes
    /// a connection that takes no bytes; <c>"accepted"</c>: the accept loop, a new connection's session made and not yet
    /// listed or counted). May block or throw.
    /// </summary>
    internal Action<string, ulong>? TestHook { get; init; }

    /// <summary>Receives one line per notable event (connection failures, protocol errors); null = silent. Must not throw or block.</summary>
    public Action<string>? Log { get; init; }

    /// <summary>Throws <see cref="BrokerException"/> (<see cref="BrokerErrorCode.InvalidArgument"/>) when a value is out of range.</summary>
    public void Validate()
    {
        static void Fail(string reason) => throw new BrokerException(BrokerErrorCode.InvalidArgument, reason);

        if (string.IsNullOrWhiteSpace(Host))
        {
            Fail("Host is required");
        }
        else if (!HostAddress.TryParse(Host, out _, out var hostReason))
        {
            // The CLI's --host reads the same way: 127.1 or 0 would bind another address than the one meant.
            Fail($"Host '{Host}' is not an address to bind: {hostReason}");
        }

        if (Port is < 0 or > 65535)
        {
            Fail("Port must be 0 to 65535");
        }

        if (MaxFrameSize < ProtocolConstants.MinimumMaxFrameSize)
        {
            Fail($"MaxFrameSize must be at least {ProtocolConstants.MinimumMaxFrameSize} bytes (the protocol's floor)");
        }

        if (MaxConnections < 1)
        {
            Fail("MaxConnections must be at least 1");
        }

        if (MaxSubscriptionsPerConnection < 1)
        {
            Fail("MaxSubscriptionsPerConnection must be at least 1");
        }

        if (HeartbeatInterval < TimeSpan.FromMilliseconds(10) || HeartbeatInterval.TotalMilliseconds * 3 > int.MaxValue)
        {
            Fail("HeartbeatInterval must be between 10 ms and about 8 days");
        }

        // The session arms it with CancelAfter, which refuses more than about 49 days: past that every TLS session failed.
        if (TlsHandshakeTimeout <= TimeSpan.Zero || TlsHandshakeTimeout.TotalMilliseconds > int.MaxValue)
        {
            Fail("TlsHandshakeTimeout must be positive and at most int.MaxValue ms (about 24 days)");
        }

        if (HandshakeTimeout <= TimeSpan.Zero || HandshakeTimeout.TotalMilliseconds > int.MaxValue)
        {
            Fail("HandshakeTimeout must be positive and at most int.MaxValue ms (about 24 days)");
        }

        if (Encoding.UTF8.GetByteCount(ServerName ?? "") > ProtocolConstants.MaxNameLength)
        {
            Fail("ServerName is at most 255 bytes of UTF-8");
        }

        if (Tokens is null)
        {
            Fail("Tokens must not be null (empty = no authentication)");
        }

        foreach (var token in Tokens!)
        {
            if (token is null || string.IsNullOrEmpty(token.Token))
            {
                Fail("an access token must not be empty");
            }

            if (Encoding.UTF8.GetByteCount(token!.Token) > ProtocolConstants.MaxShortBytesLength)
            {
                Fail("an access token is at most 65535 bytes of UTF-8");
            }

            if (token.Tenant is "")
            {
                Fail("an access token's tenant must not be empty (null: the token is its own tenant)");
            }

            foreach (var p in (token.PublishPatterns ?? []).Concat(token.SubscribePatterns ?? []))
            {
                if (!TopicPattern.TryParse(p, out _, out var reason))
                {
                    Fail($"invalid access pattern '{p}': {reason}");
                }
            }
        }

        if (TlsCertificatePath is { } path && !File.Exists(path))
        {
            Fail($"TLS certificate file '{path}' does not exist");
        }
    }
}
