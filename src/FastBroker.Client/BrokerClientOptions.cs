using System.Net.Security;
using FastBroker.Protocol;

namespace FastBroker.Client;

/// <summary>How a <see cref="BrokerClient"/> connects and behaves. Immutable; start from <see cref="Default"/> and change what you need with <c>with</c>.</summary>
public sealed record BrokerClientOptions
{
    /// <summary>127.0.0.1:7400, no TLS, no token, reconnect on, 8192 publishes in flight.</summary>
    public static BrokerClientOptions Default { get; } = new();

    /// <summary>Servers as <c>host:port</c> (IPv6 as <c>[::1]:7400</c>); the client tries them all at once and keeps the first that completes the handshake (docs/client.md).</summary>
    public IReadOnlyList<string> Endpoints { get; init; } = ["127.0.0.1:7400"];

    /// <summary>Sent in HELLO when the server requires a token; null or empty = none.</summary>
    public string? AuthToken { get; init; }

    /// <summary>The client's name in HELLO (server logs).</summary>
    public string ClientName { get; init; } = "fastbroker-dotnet";

    /// <summary>The client's version in HELLO (server logs).</summary>
    public string ClientVersion { get; init; } = "1.0.0";

    /// <summary>Wrap the TCP stream in TLS (<see cref="SslStream"/>).</summary>
    public bool UseTls { get; init; }

    /// <summary>The name the server certificate must carry; null = the endpoint's host.</summary>
    public string? TlsTargetHost { get; init; }

    /// <summary>Custom server-certificate validation (e.g. a test CA); null = the system's validation.</summary>
    public RemoteCertificateValidationCallback? CertificateValidation { get; init; }

    /// <summary>What publish confirmations wait for unless a publish says otherwise.</summary>
    public Durability Durability { get; init; } = Durability.TopicDefault;

    /// <summary>
    /// Most publishes handed to the client and not yet confirmed (fire-and-forget ones count until written to the
    /// socket). Beyond it <see cref="BrokerClient.PublishAsync(string, ReadOnlySpan{byte}, CancellationToken)"/>
    /// queues in call order and its task waits; <see cref="BrokerClient.Publish"/> blocks the calling thread.
    /// </summary>
    public int MaxInFlight { get; init; } = 8192;

    /// <summary>
    /// Idempotent-producer id (kept across reconnects); 0 = a random non-zero id per client instance. A configured id
    /// may be reused by a later process: <see cref="BrokerClient.ConnectAsync"/> asks the server where its sequence
    /// stands (INIT_PRODUCER) and continues after it. A server granting producer epochs also fences older instances
    /// still publishing with the id: their publishes then fail with <c>ProducerFenced</c> (docs/client.md).
    /// </summary>
    public ulong ProducerId { get; init; }

    /// <summary>Reconnect after a connection loss, resending unconfirmed publishes and resubscribing.</summary>
    public bool Reconnect { get; init; } = true;

    /// <summary>
    /// First delay between reconnect attempts; doubles up to <see cref="ReconnectMaxDelay"/>. Each wait is drawn between
    /// half the delay and the whole of it, so that many clients cut off together do not all come back at once.
    /// </summary>
    public TimeSpan ReconnectInitialDelay { get; init; } = TimeSpan.FromMilliseconds(50);

    /// <summary>
    /// Longest delay between reconnect attempts: 250 ms, so that a client of a failover pair reaches the new primary
    /// within a quarter of a second of its promotion (the pair itself takes 1–2 s). <see cref="ReconnectTimeout"/>
    /// bounds how long it keeps trying.
    /// </summary>
    public TimeSpan ReconnectMaxDelay { get; init; } = TimeSpan.FromMilliseconds(250);

    /// <summary>Give up reconnecting after this long without a connection (an attempt still in progress then is abandoned); pending operations then fail with <see cref="BrokerClientException"/>.</summary>
    public TimeSpan ReconnectTimeout { get; init; } = TimeSpan.FromSeconds(60);

    /// <summary>
    /// Longest time for one connection attempt to one endpoint (TCP, TLS and the HELLO/WELCOME handshake); with a
    /// configured <see cref="ProducerId"/>, also how long <see cref="BrokerClient.ConnectAsync"/> then waits for the
    /// INIT_PRODUCER answer.
    /// </summary>
    public TimeSpan ConnectTimeout { get; init; } = TimeSpan.FromSeconds(10);

    /// <summary>Send a PING after this long without sending or without receiving; null = half the interval the server announces in WELCOME (the shorter one wins). The connection counts as dead (and the client reconnects, to the standby if it took over) once a PING has gone 2 × this without anything received (3 × this after the last receipt when the PING left on time): the server answers every PING and says nothing unasked, so the client's own stalls are not counted as the server's silence. Silence alone counts too, after 8 × this (a server that stopped reading leaves the writer stuck before its PING goes out).</summary>
    public TimeSpan? HeartbeatInterval { get; init; }

    /// <summary>Largest frame this client accepts (announced in HELLO, so the server splits batches to fit).</summary>
    public int MaxInboundFrameSize { get; init; } = 4 * 1024 * 1024;

    /// <summary>Most messages per PUBLISH_BATCH frame.</summary>
    public int MaxBatchMessages { get; init; } = 256;

    /// <summary>
    /// Largest PUBLISH_BATCH frame the client builds (a bigger single message goes alone, up to the server's
    /// maximum frame size). 64 KiB: the server acts on a batch only once it has all of it, so larger frames add
    /// latency without saving syscalls.
    /// </summary>
    public int MaxBatchBytes { get; init; } = 64 * 1024;

    /// <summary>
    /// Each connection gets its own thread, blocked in <c>poll</c> on the socket, that reads what arrives and runs the
    /// reader loop (parsing, completions, handler subscriptions) at once: one thread wake-up per arrival. Without TLS the
    /// socket also stays out of the runtime's socket engine (a synchronous connect, synchronous sends), so an arrival
    /// wakes no other thread; a writer loop that meets a full send buffer then blocks its pool thread until there is
    /// room or the connection ends. false = the reader loop
    /// runs on the thread pool through the runtime's socket engine (an epoll thread that hands each arrival to a pool
    /// worker: a second wake-up, tens of microseconds on a busy or virtualized machine). A blocked thread costs no
    /// CPU; turn it off for processes with hundreds of clients.
    /// </summary>
    public bool ReceiveThread { get; init; } = true;

    /// <summary>
    /// A lone <see cref="BrokerClient.PublishAsync(string, ReadOnlySpan{byte}, PublishOptions?, CancellationToken)"/>
    /// (nothing else unconfirmed) is written to the socket by the calling thread with a send that never blocks,
    /// instead of waking the writer loop to do it. Publishes made while others are in flight are still batched by
    /// the writer loop, and whatever the kernel does not take at once is left to it. Linux, without TLS; ignored
    /// elsewhere.
    /// </summary>
    public bool DirectSend { get; init; } = true;

    /// <summary>
    /// Run the continuation of a <see cref="BrokerClient.PublishAsync(string, ReadOnlySpan{byte}, PublishOptions?, CancellationToken)"/>
    /// task on the thread that read its CONFIRM (the receive thread, see <see cref="ReceiveThread"/>) instead of
    /// queueing it to the thread pool: one thread wake-up fewer per confirmation. The code after <c>await</c> then
    /// holds up every later frame of the connection: it must be short and never block (no <c>.Result</c>, no
    /// <see cref="BrokerClient.Publish"/> at the in-flight limit). Off by default.
    /// </summary>
    public bool InlineCompletions { get; init; }

    /// <summary>
    /// Connection changes and failures nobody awaits (fire-and-forget publish errors, server errors on ACK/CREDIT,
    /// messages a subscription missed). Called on the client's I/O tasks: return quickly and do not block (nor call
    /// <see cref="BrokerClient.Publish"/>, which blocks at the in-flight limit that only those tasks can lift).
    /// </summary>
    public Action<BrokerClientEvent>? OnEvent { get; init; }

    /// <summary>
    /// Throws <see cref="ArgumentException"/> when a value is out of range, or when <see cref="ClientName"/> or
    /// <see cref="ClientVersion"/> (at most 255 UTF-8 bytes) or <see cref="AuthToken"/> (at most 4 KiB) is too long or not
    /// valid UTF-16 text (a lone surrogate), naming that property. <see cref="BrokerClient.ConnectAsync"/> calls it first.
    /// </summary>
    public void Validate()
    {
        if (Endpoints is null || Endpoints.Count == 0)
        {
            throw new ArgumentException("At least one endpoint is required.", nameof(Endpoints));
        }

        foreach (var endpoint in Endpoints)
        {
            _ = Internal.Endpoint.Parse(endpoint);
        }

        if (MaxInFlight < 1)
        {
            throw new ArgumentOutOfRangeException(nameof(MaxInFlight), MaxInFlight, "Must be at least 1.");
        }

        if (MaxBatchMessages is < 1 or > ProtocolConstants.MaxBatchCount)
        {
            throw new ArgumentOutOfRangeException(nameof(MaxBatchMessages), MaxBatchMessages, "Must be 1 to 65535.");
        }

        if (MaxBatchBytes < 1024)
        {
            throw new ArgumentOutOfRangeException(nameof(MaxBatchBytes), MaxBatchBytes, "Must be at least 1024.");
        }

        if (MaxInboundFrameSize < ProtocolConstants.MinimumMaxFrameSize)
        {
            throw new ArgumentOutOfRangeException(nameof(MaxInboundFrameSize), MaxInboundFrameSize, $"Must be at least {ProtocolConstants.MinimumMaxFrameSize}.");
        }

        if (ReconnectInitialDelay <= TimeSpan.Zero || ReconnectMaxDelay < ReconnectInitialDelay || ReconnectTimeout < TimeSpan.Zero || ConnectTimeout <= TimeSpan.Zero)
        {
            throw new ArgumentOutOfRangeException(nameof(ReconnectInitialDelay), "Delays and timeouts must be positive, ReconnectMaxDelay ≥ ReconnectInitialDelay.");
        }

        if (HeartbeatInterval is { } h && h < TimeSpan.FromMilliseconds(10))
        {
            throw new ArgumentOutOfRangeException(nameof(HeartbeatInterval), h, "Must be at least 10 ms.");
        }

        CheckText(ClientName, nameof(ClientName), ProtocolConstants.MaxNameLength, "a str8 in HELLO");
        CheckText(ClientVersion, nameof(ClientVersion), ProtocolConstants.MaxNameLength, "a str8 in HELLO");
        CheckText(AuthToken, nameof(AuthToken), 4096, "4 KiB, as docs/protocol.md asks of HELLO's authToken");
    }

    private static void CheckText(string? text, string name, int maxBytes, string why)
    {
        var bytes = Internal.Utf8Names.GetByteCount(text ?? string.Empty, name); // refuses a lone surrogate naming it
        if (bytes > maxBytes)
        {
            throw new ArgumentException($"{name} is {bytes} UTF-8 bytes; at most {maxBytes} ({why}).", name);
        }
    }
}
