using System.Buffers;
using System.Net;
using System.Net.Sockets;
using System.Text;
using System.Text.Json;
using FastBroker.Net;
using FastBroker.Server.Internal;

namespace FastBroker.Server;

/// <summary>
/// A tiny HTTP/1.1 endpoint for operators, on a plain <see cref="Socket"/> (no ASP.NET, AOT-safe): <c>GET /health</c>
/// (JSON), <c>GET /primary</c> and <c>GET /standby[?lag=N]</c> (the same JSON; 200 or 503 by role, for a load
/// balancer's health check) and <c>GET /metrics</c> (Prometheus text format 0.0.4), one request per connection.
/// </summary>
public sealed class AdminHttpServer : IAsyncDisposable
{
    /// <summary>The documented default port.</summary>
    public const int DefaultPort = 7401;

    // 8 KiB of request head is plenty for a GET; 5 s covers a slow scraper; 32 requests at once bound the work.
    private const int MaxRequestBytes = 8 * 1024;
    private const int MaxConcurrent = 32;
    private static readonly TimeSpan s_requestTimeout = TimeSpan.FromSeconds(5);

    private readonly Func<(Broker? Broker, BrokerServer? Server)> _target;
    private readonly Func<string, string, string, (int Status, string ContentType, byte[] Body)?>? _routes;
    private readonly Socket _listener;
    private readonly CancellationTokenSource _stop = new();
    private Task _acceptLoop = Task.CompletedTask;
    private readonly LinkedList<Socket> _reading = new(); // connections still reading their request head, oldest first; itself the lock
    private int _active;
    private int _disposed;

    private AdminHttpServer(Func<(Broker?, BrokerServer?)> target, Func<string, string, string, (int, string, byte[])?>? routes, Socket listener)
    {
        _target = target;
        _routes = routes;
        _listener = listener;
        EndPoint = (IPEndPoint)listener.LocalEndPoint!;
    }

    /// <summary>The bound address and port.</summary>
    public IPEndPoint EndPoint { get; }

    /// <summary>Connections being served now (tests).</summary>
    internal int OpenConnections => Volatile.Read(ref _active);

    /// <summary>Binds, then serves in the background.</summary>
    /// <param name="broker">The broker whose snapshot is reported.</param>
    /// <param name="server">The protocol server whose counters are reported, if any.</param>
    /// <param name="host">
    /// The address to bind, as <see cref="ServerOptions.Host"/>: an IPv4 address of four numbers, an IPv6 address or a host
    /// name, which binds the first IPv4 address it resolves to (else its first address).
    /// </param>
    /// <param name="port">The port; 0 picks a free one.</param>
    /// <param name="cancellationToken">Cancels the host name resolution.</param>
    /// <exception cref="ArgumentException"><paramref name="host"/> is not an address (a shortened IPv4 form such as <c>127.1</c> included).</exception>
    /// <exception cref="SocketException">The address cannot be bound, or <paramref name="host"/> is a name that does not resolve.</exception>
    public static Task<AdminHttpServer> StartAsync(Broker broker, BrokerServer? server = null, string host = "127.0.0.1", int port = DefaultPort, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(broker);
        return StartAsync(() => (broker, server), null, host, port, cancellationToken);
    }

    /// <summary>
    /// The general form (a failover node): the broker and server may come and go with the node's role; the extra
    /// <paramref name="routes"/> (method, path, query) answer first, returning null for what they do not handle.
    /// </summary>
    /// <param name="target">The broker and server to report on now (a null broker answers 503).</param>
    /// <param name="routes">
    /// Extra routes by method, path and query string (what follows <c>?</c>, empty if none; a <c>GET /standby</c>
    /// whose <c>lag</c> is malformed never reaches them: it is answered 400); null = none.
    /// </param>
    /// <param name="host">
    /// The address to bind, as <see cref="ServerOptions.Host"/>: an IPv4 address of four numbers, an IPv6 address or a host
    /// name, which binds the first IPv4 address it resolves to (else its first address).
    /// </param>
    /// <param name="port">The port; 0 picks a free one.</param>
    /// <param name="cancellationToken">Cancels the host name resolution.</param>
    /// <exception cref="ArgumentException"><paramref name="host"/> is not an address (a shortened IPv4 form such as <c>127.1</c> included).</exception>
    /// <exception cref="SocketException">The address cannot be bound, or <paramref name="host"/> is a name that does not resolve.</exception>
    public static async Task<AdminHttpServer> StartAsync(Func<(Broker? Broker, BrokerServer? Server)> target, Func<string, string, string, (int Status, string ContentType, byte[] Body)?>? routes, string host, int port, CancellationToken cancellationToken = default)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(port, 0);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(port, 65535);
        if (!HostAddress.TryParse(host, out _, out var reason))
        {
            throw new ArgumentException($"host '{host}' is not an address to bind: {reason}.", nameof(host));
        }

        var address = await HostAddress.ResolveListenAsync(host, nameof(host), cancellationToken).ConfigureAwait(false);
        var listener = new Socket(address.AddressFamily, SocketType.Stream, ProtocolType.Tcp);
        try
        {
            listener.Bind(new IPEndPoint(address, port));
            listener.Listen(64);
        }
        catch
        {
            listener.Dispose();
            throw;
        }

        var admin = new AdminHttpServer(target, routes, listener);
        admin._acceptLoop = Task.Run(admin.AcceptLoopAsync, CancellationToken.None);
        return admin;
    }

    /// <summary>Stops listening and waits for the accept loop.</summary>
    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
        {
            return;
        }

        await _stop.CancelAsync().ConfigureAwait(false);
        _listener.Dispose();
        await _acceptLoop.ConfigureAwait(false);
        _stop.Dispose();
    }

    private async Task AcceptLoopAsync()
    {
        while (await SocketAccept.NextAsync(_listener, _stop.Token, line => _target().Server?.Log($"admin http: {line}")).ConfigureAwait(false) is { } socket)
        {
            // Every slot taken: the connection that has been reading its request head the longest makes room (Apache's
            // answer to slowloris). Dropping the new one instead let 32 clients that send a byte now and then keep every
            // health check out; a load balancer's request arrives whole at once, so it is never the oldest one reading.
            if (Interlocked.Increment(ref _active) > MaxConcurrent && !EvictOldestReading())
            {
                Interlocked.Decrement(ref _active);
                socket.Dispose();
                continue;
            }

            var node = new LinkedListNode<Socket>(socket);
            lock (_reading)
            {
                _reading.AddLast(node);
            }

            _ = HandleAsync(node);
        }
    }

    /// <summary>Closes the connection still reading its request head that was accepted first; false when none is.</summary>
    private bool EvictOldestReading()
    {
        Socket socket;
        lock (_reading)
        {
            if (_reading.First is not { } oldest)
            {
                return false;
            }

            _reading.Remove(oldest);
            socket = oldest.Value;
        }

        socket.Dispose(); // its pending receive fails, and its handler ends and gives its slot back
        return true;
    }

    private async Task HandleAsync(LinkedListNode<Socket> node)
    {
        var socket = node.Value;
        try
        {
            using var timeout = new CancellationTokenSource(s_requestTimeout);
            var buffer = new byte[MaxRequestBytes];
            var length = 0;
            var headEnd = -1;
            while (headEnd < 0 && length < buffer.Length)
            {
                var n = await socket.ReceiveAsync(buffer.AsMemory(length), SocketFlags.None, timeout.Token).ConfigureAwait(false);
                if (n == 0)
                {
                    return;
                }

                length += n;
                headEnd = buffer.AsSpan(0, length).IndexOf("\r\n\r\n"u8);
            }

            DoneReading(node);

            // Answered on a pool thread, never on the socket event thread (where this resumes when socket completions run
            // inline, docs/server.md "Threading"): a route may wait for seconds (POST /promote) and must not hold up
            // every connection's I/O meanwhile.
            var end = headEnd;
            var (status, contentType, body) = end < 0
                ? (400, "text/plain; charset=utf-8", "request head too large\n"u8.ToArray())
                : await Task.Run(() => Respond(buffer.AsSpan(0, end))).ConfigureAwait(false);
            var head = Encoding.ASCII.GetBytes(
                $"HTTP/1.1 {status} {Reason(status)}\r\nContent-Type: {contentType}\r\nContent-Length: {body.Length}\r\nCache-Control: no-store\r\n"
                + (status == 405 ? "Allow: GET\r\n" : "")
                + "Connection: close\r\n\r\n");
            await socket.SendAsync(head, SocketFlags.None, timeout.Token).ConfigureAwait(false);
            await socket.SendAsync(body, SocketFlags.None, timeout.Token).ConfigureAwait(false);
            socket.Shutdown(SocketShutdown.Send);
        }
        catch (Exception e) when (e is SocketException or OperationCanceledException or ObjectDisposedException)
        {
        }
        catch (Exception e)
        {
            _target().Server?.Log($"admin http: {e.GetType().Name}: {e.Message}");
        }
        finally
        {
            DoneReading(node);
            socket.Dispose();
            Interlocked.Decrement(ref _active);
        }
    }

    private void DoneReading(LinkedListNode<Socket> node)
    {
        lock (_reading)
        {
            if (node.List is not null)
            {
                _reading.Remove(node);
            }
        }
    }

    private (int Status, string ContentType, byte[] Body) Respond(ReadOnlySpan<byte> head)
    {
        var lineEnd = head.IndexOf("\r\n"u8);
        var line = Encoding.ASCII.GetString(lineEnd < 0 ? head : head[..lineEnd]);
        var parts = line.Split(' ');
        if (parts.Length != 3 || !parts[2].StartsWith("HTTP/1.", StringComparison.Ordinal))
        {
            return (400, "text/plain; charset=utf-8", "bad request\n"u8.ToArray());
        }

        var path = OriginPath(parts[1]);
        var query = "";
        var mark = path.IndexOf('?', StringComparison.Ordinal);
        if (mark >= 0)
        {
            query = path[(mark + 1)..];
            path = path[..mark];
        }

        // A malformed ?lag= is the caller's mistake on every node, whatever its role: 400, not a 503 that would read
        // as "not a healthy standby".
        if (parts[0] == "GET" && path == "/standby" && !StandbyCheckQuery.TryParse(query, out _, out var lagError))
        {
            return (400, "text/plain; charset=utf-8", Encoding.UTF8.GetBytes(lagError + "\n"));
        }

        if (_routes?.Invoke(parts[0], path, query) is { } routed)
        {
            return routed;
        }

        if (parts[0] != "GET")
        {
            return (405, "text/plain; charset=utf-8", "only GET is supported\n"u8.ToArray());
        }

        var (broker, server) = _target();
        if (broker is null)
        {
            return (503, "text/plain; charset=utf-8", "this node does not serve clients now (not the primary)\n"u8.ToArray());
        }

        switch (path)
        {
            // /primary and /standby answer by HTTP code, for a load balancer's health check that reads nothing else: a
            // server that serves clients is the primary (a failover node answers them by its role, through its routes).
            case "/health" or "/primary":
                return (200, "application/json", Health(broker, server));
            case "/standby":
                return (503, "application/json", Health(broker, server));
            case "/metrics":
                return (200, "text/plain; version=0.0.4; charset=utf-8", Encoding.UTF8.GetBytes(PrometheusFormatter.Format(broker.GetSnapshot(), server)));
            default:
                return (404, "text/plain; charset=utf-8", "not found: try /health, /primary, /standby or /metrics\n"u8.ToArray());
        }
    }

    private static byte[] Health(Broker broker, BrokerServer? server)
    {
        var json = new ArrayBufferWriter<byte>(256);
        using (var w = new Utf8JsonWriter(json))
        {
            AdminDocuments.WriteHealth(w, server, broker.GetSnapshot());
        }

        return json.WrittenSpan.ToArray();
    }

    /// <summary>
    /// The origin form of a request target. RFC 9112 §3.2.2: a server must accept the absolute form
    /// (<c>http://host:port/metrics?x</c>), which proxies and some scrapers send; its scheme and authority are dropped
    /// (<c>/metrics?x</c>, an empty path is <c>/</c>). Any other target is returned as it is.
    /// </summary>
    internal static string OriginPath(string target)
    {
        if (target.StartsWith('/'))
        {
            return target;
        }

        var scheme = target.IndexOf("://", StringComparison.Ordinal);
        if (scheme <= 0 || !IsScheme(target.AsSpan(0, scheme)))
        {
            return target;
        }

        var authorityStart = scheme + 3;
        var pathStart = target.AsSpan(authorityStart).IndexOfAny('/', '?');
        if (pathStart < 0)
        {
            return "/";
        }

        var rest = target[(authorityStart + pathStart)..];
        return rest[0] == '?' ? "/" + rest : rest;
    }

    // RFC 3986 §3.1: ALPHA *( ALPHA / DIGIT / "+" / "-" / "." )
    private static bool IsScheme(ReadOnlySpan<char> scheme)
    {
        if (!char.IsAsciiLetter(scheme[0]))
        {
            return false;
        }

        foreach (var c in scheme)
        {
            if (!char.IsAsciiLetterOrDigit(c) && c is not ('+' or '-' or '.'))
            {
                return false;
            }
        }

        return true;
    }

    private static string Reason(int status) => status switch
    {
        200 => "OK",
        400 => "Bad Request",
        404 => "Not Found",
        409 => "Conflict",
        503 => "Service Unavailable",
        405 => "Method Not Allowed",
        _ => "Error",
    };
}
