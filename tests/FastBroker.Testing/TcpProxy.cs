using System.Net;
using System.Net.Sockets;

namespace FastBroker.Testing;

/// <summary>
/// A loopback TCP forwarder in front of a server: connection loss on demand, deterministic, without killing the
/// server. <see cref="CutAll"/> closes every forwarded connection (new ones are still accepted); <see cref="Cut"/>
/// also closes each new one as soon as it is accepted (a network partition, e.g. of a replication link while the
/// witness stays reachable) until <see cref="Restore"/>; <see cref="DropServerBytes"/> loses what the server sends
/// (publishes stored but never confirmed); <see cref="Stall"/> stops forwarding without closing anything (a peer that
/// stops reading: the sender's socket buffers fill up) until <see cref="Resume"/>; <see cref="AbandonAll"/> closes
/// only the client's side of every forwarded connection (a half-open connection: the server is told nothing);
/// <see cref="ServerBytesPerConnection"/> forwards only the start of what the server sends on each connection.
/// <see cref="BytesPerSecond"/> makes every connection a slow link (a peer catching up falls behind and stays behind).
/// <see cref="FirstAcceptedAt"/> tells when the first connection since <see cref="ClearFirstAccepted"/> was accepted:
/// a point certainly before the server answered anything on it.
/// </summary>
public sealed class TcpProxy : IAsyncDisposable
{
    private readonly TcpListener _listener = new(IPAddress.Loopback, 0);
    private readonly IPEndPoint _target;
    private readonly CancellationTokenSource _stop = new();
    private readonly List<Socket> _sockets = [];
    private readonly HashSet<Socket> _held = []; // server sides of abandoned connections: open, unread, until disposal
    private readonly List<Link> _links = []; // the forwarded connections CutAll closes
    private readonly Task _accept;
    private volatile bool _cut;
    private volatile bool _dropServerBytes;
    private volatile int _bytesPerSecond;
    private readonly object _flowGate = new();
    private TaskCompletionSource _flowing = Flowing();
    private int _refused;
    private long _serverBytesPerConnection = -1;
    private long _firstAcceptedAt;

    public TcpProxy(int targetPort)
    {
        _target = new IPEndPoint(IPAddress.Loopback, targetPort);
        _listener.Start();
        _accept = Task.Run(AcceptAsync);
    }

    public string Endpoint => $"127.0.0.1:{((IPEndPoint)_listener.LocalEndpoint).Port}";

    /// <summary>
    /// A <see cref="System.Diagnostics.Stopwatch"/> timestamp taken as the first connection since the proxy started or
    /// since <see cref="ClearFirstAccepted"/> was accepted (cut or not), before anything of it was forwarded; 0 if none.
    /// </summary>
    public long FirstAcceptedAt => Interlocked.Read(ref _firstAcceptedAt);

    /// <summary>Forgets <see cref="FirstAcceptedAt"/>: the next connection accepted sets it.</summary>
    public void ClearFirstAccepted() => Interlocked.Exchange(ref _firstAcceptedAt, 0);

    /// <summary>While true, what the server sends is read and thrown away (CONFIRMs, deliveries…).</summary>
    public bool DropServerBytes
    {
        get => _dropServerBytes;
        set => _dropServerBytes = value;
    }

    /// <summary>
    /// When set, each connection forwards at most this many bytes of what the server sends (the start of a stream: a
    /// handshake, a snapshot) and never forwards the rest (the connection stays open until either side closes it);
    /// what the client sends still flows. Null (the default): everything is forwarded.
    /// </summary>
    public long? ServerBytesPerConnection
    {
        get => Volatile.Read(ref _serverBytesPerConnection) is var n and >= 0 ? n : null;
        set => Volatile.Write(ref _serverBytesPerConnection, value ?? -1);
    }

    /// <summary>
    /// While above 0, each direction of each connection forwards at most this many bytes a second (in slices every
    /// 10 ms), bytes flowing all the time, as on a slow link; 0 (the default) forwards as fast as the sockets go.
    /// </summary>
    public int BytesPerSecond
    {
        get => _bytesPerSecond;
        set => _bytesPerSecond = Math.Max(0, value);
    }

    /// <summary>How many connections were refused while cut (proof that someone tried).</summary>
    public int Refused => Volatile.Read(ref _refused);

    /// <summary>Closes every forwarded connection and refuses new ones until <see cref="Restore"/>.</summary>
    public void Cut()
    {
        _cut = true;
        CutAll();
    }

    /// <summary>Forwards new connections again (after <see cref="Cut"/>).</summary>
    public void Restore() => _cut = false;

    /// <summary>
    /// Stops forwarding in both directions, connections kept open: bytes already read are held, nothing more is read,
    /// so the senders' socket buffers fill up. Until <see cref="Resume"/>.
    /// </summary>
    public void Stall()
    {
        lock (_flowGate)
        {
            if (_flowing.Task.IsCompleted)
            {
                _flowing = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            }
        }
    }

    /// <summary>Forwards again, in order, what was held (after <see cref="Stall"/>).</summary>
    public void Resume()
    {
        lock (_flowGate)
        {
            _flowing.TrySetResult();
        }
    }

    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync();
        _listener.Stop();
        CutAll();
        try
        {
            await _accept;
        }
        catch (Exception ex) when (ex is OperationCanceledException or SocketException or ObjectDisposedException)
        {
        }

        lock (_sockets)
        {
            foreach (var s in _held)
            {
                s.Dispose();
            }

            _held.Clear();
        }

        _stop.Dispose();
    }

    /// <summary>
    /// Closes the client's side of every forwarded connection and leaves the server's side open, unread and unwritten
    /// until this proxy is disposed: the client sees its connection end, the server sees nothing (as when a network
    /// path dies without a FIN) until its own idle timeout. New connections are still accepted.
    /// </summary>
    public void AbandonAll()
    {
        lock (_sockets)
        {
            for (var i = 0; i + 1 < _sockets.Count; i += 2)
            {
                _held.Add(_sockets[i + 1]); // added in pairs: client, server
                _sockets[i].Dispose();
            }

            _sockets.Clear();
        }
    }

    /// <summary>
    /// Closes every forwarded connection (both sides); new ones are still accepted. Nothing read on a closed connection
    /// is forwarded after this.
    /// </summary>
    public void CutAll()
    {
        lock (_sockets)
        {
            CutAllLocked();
        }
    }

    /// <summary>
    /// Ends <see cref="DropServerBytes"/> and closes every forwarded connection in one step: what the server sent on
    /// them while it was dropped (a CONFIRM read just before this) never reaches a client, and every connection
    /// accepted after this forwards all of it. Setting <see cref="DropServerBytes"/> false, then <see cref="CutAll"/>,
    /// forwards what a connection reads between the two.
    /// </summary>
    public void CutAllAndForwardServerBytes()
    {
        lock (_sockets)
        {
            foreach (var link in _links)
            {
                link.Dead = true; // before the flag is cleared: a pump that sees it cleared sees its connection dead
            }

            _dropServerBytes = false;
            CutAllLocked();
        }
    }

    private void CutAllLocked()
    {
        foreach (var link in _links)
        {
            link.Dead = true;
        }

        _links.Clear();
        foreach (var s in _sockets)
        {
            s.Dispose();
        }

        _sockets.Clear();
    }

    private async Task AcceptAsync()
    {
        while (!_stop.IsCancellationRequested)
        {
            Socket client;
            try
            {
                client = await _listener.AcceptSocketAsync(_stop.Token);
            }
            catch (Exception ex) when (ex is OperationCanceledException or SocketException or ObjectDisposedException)
            {
                return;
            }

            Interlocked.CompareExchange(ref _firstAcceptedAt, System.Diagnostics.Stopwatch.GetTimestamp(), 0);

            if (_cut)
            {
                Interlocked.Increment(ref _refused);
                client.Dispose();
                continue;
            }

            var server = new Socket(SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
            if (_bytesPerSecond > 0)
            {
                // A slow link holds little in flight: without this the kernel's buffers (grown for a fast reader) would
                // take megabytes from the server before the pace shows.
                server.ReceiveBufferSize = 64 << 10;
            }

            try
            {
                await server.ConnectAsync(_target, _stop.Token);
            }
            catch (Exception ex) when (ex is OperationCanceledException or SocketException)
            {
                client.Dispose();
                server.Dispose();
                continue;
            }

            client.NoDelay = true;
            var link = new Link();
            lock (_sockets)
            {
                _sockets.Add(client);
                _sockets.Add(server);
                _links.Add(link);
            }

            if (_cut)
            {
                CutAll();
                continue;
            }

            _ = PumpAsync(client, server, drop: false, link);
            _ = PumpAsync(server, client, drop: true, link);
        }
    }

    private async Task PumpAsync(Socket from, Socket to, bool drop, Link link)
    {
        var buffer = new byte[64 * 1024];
        var forwarded = 0L;
        try
        {
            int n;
            while (true)
            {
                await FlowingAsync();
                var rate = _bytesPerSecond;
                var slice = rate > 0 ? buffer.AsMemory(0, Math.Clamp(rate / 100, 1, buffer.Length)) : buffer;
                if ((n = await from.ReceiveAsync(slice, SocketFlags.None, _stop.Token)) <= 0)
                {
                    break;
                }

                if (rate > 0)
                {
                    await Task.Delay(TimeSpan.FromSeconds((double)n / rate), _stop.Token); // the slow link's pace, not a wait for a condition
                }

                if (drop && _dropServerBytes)
                {
                    continue;
                }

                if (link.Dead)
                {
                    break; // cut: read before the sockets were closed, never forwarded
                }

                await FlowingAsync(); // stalled while this read was pending: hold its bytes too
                if (link.Dead)
                {
                    break;
                }
                var limit = drop ? Volatile.Read(ref _serverBytesPerConnection) : -1;
                if (limit >= 0 && forwarded + n > limit)
                {
                    // Past the limit nothing more of the server's is forwarded on this connection.
                    await to.SendAsync(buffer.AsMemory(0, (int)Math.Max(0, limit - forwarded)), SocketFlags.None, _stop.Token);
                    await Task.Delay(Timeout.Infinite, _stop.Token);
                }

                forwarded += n;
                await to.SendAsync(buffer.AsMemory(0, n), SocketFlags.None, _stop.Token);
            }
        }
        catch (Exception ex) when (ex is OperationCanceledException or SocketException or ObjectDisposedException)
        {
        }
        finally
        {
            lock (_sockets)
            {
                if (!_held.Contains(from))
                {
                    from.Dispose();
                }

                if (!_held.Contains(to))
                {
                    to.Dispose();
                }
            }
        }
    }

    /// <summary>One forwarded connection: dead once cut, so its pumps forward nothing more.</summary>
    private sealed class Link
    {
        public volatile bool Dead;
    }

    private static TaskCompletionSource Flowing()
    {
        var flowing = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        flowing.SetResult();
        return flowing;
    }

    private Task FlowingAsync()
    {
        lock (_flowGate)
        {
            return _flowing.Task.WaitAsync(_stop.Token);
        }
    }
}
