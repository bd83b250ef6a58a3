using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Reflection;
using System.Security.Cryptography.X509Certificates;
using FastBroker.Engine;
using FastBroker.Net;
using FastBroker.Server.Internal;

namespace FastBroker.Server;

/// <summary>
/// The TCP server of the binary protocol (docs/protocol.md) in front of an embedded <see cref="Broker"/>: one
/// session per connection on System.IO.Pipelines, no thread per connection. docs/server.md describes it.
/// </summary>
/// <example>
/// <code>
/// await using var broker = await Broker.OpenAsync(BrokerOptions.Default with { DataDirectory = "data" });
/// await using var server = await BrokerServer.StartAsync(broker, ServerOptions.Default with { Port = 0 });
/// Console.WriteLine($"listening on {server.EndPoint}");
/// </code>
/// </example>
public sealed class BrokerServer : IAsyncDisposable
{
    /// <summary>
    /// The server version announced in WELCOME and shown by the admin port's <c>/health</c> and <c>/status</c>: the
    /// product's version with the commit it was built from (<c>0.1.0+&lt;sha&gt;</c>), as <c>fastbroker --version</c>
    /// prints it.
    /// </summary>
    public static string Version { get; } = typeof(BrokerServer).Assembly.GetCustomAttribute<AssemblyInformationalVersionAttribute>()?.InformationalVersion ?? "0.0.0";

    // Connections past MaxConnections are still read up to their HELLO (to answer TooManyConnections); beyond this
    // many extra sockets they are dropped at accept, so a flood of idle sockets cannot exhaust the process.
    private const int HandshakeSlack = 64;

    private readonly Broker _broker;
    private readonly Socket _listener;
    private readonly Dictionary<ulong, Session> _sessions = [];
    private readonly CancellationTokenSource _acceptStop = new();
    private readonly object _stopGate = new();
    private readonly Timer _idleTimer;
    private readonly long _startedAt = Stopwatch.GetTimestamp();
    private readonly RepeatedLogLines _closeLog;
    private readonly Dictionary<string, DurableGate> _durableGates = new(StringComparer.Ordinal); // itself the lock of the map
    private Session[] _sessionList = []; // copy-on-write: the idle timer walks it without allocating
    private Task _acceptLoop = Task.CompletedTask;
    private Task? _stopping;
    private ulong _nextConnectionId;
    private int _established;
    private int _evicting; // sessions evicted (Session.TryEvict) and not yet ended: their slots are free already
    private long _accepted;
    private long _protocolErrorCloses;
    private long _framesIn;
    private long _framesOut;
    private long _bytesIn;
    private long _bytesOut;
    private long _journalerConfirms;
    private int _readWakeThread; // 0: none seen yet; 1: the socket engine's own thread (inline); 2: a pool worker
    private long _journalerConfirmsShort;
    private int _idleCheckRunning; // 1 while the idle timer's check runs
    private long _idleChecksSkipped;

    private BrokerServer(Broker broker, ServerOptions options, Socket listener, X509Certificate2? certificate)
    {
        _broker = broker;
        Options = options;
        _listener = listener;
        Certificate = certificate;
        Tokens = AccessPolicy.Build(options.Tokens);
        EndPoint = (IPEndPoint)listener.LocalEndPoint!;
        _closeLog = new RepeatedLogLines(LogRateLimit.DefaultInterval, options.LogClock);

        // A quarter of the heartbeat (at most 1 s): an idle connection is closed within 3.25 heartbeats.
        var period = (int)Math.Clamp(options.HeartbeatInterval.TotalMilliseconds / 4, 5, 1000);
        _idleTimer = new Timer(static s => ((BrokerServer)s!).CheckIdle(), this, period, period);
    }

    /// <summary>The settings it runs with.</summary>
    public ServerOptions Options { get; }

    /// <summary>The bound address and port (the real port when <see cref="ServerOptions.Port"/> was 0).</summary>
    public IPEndPoint EndPoint { get; }

    /// <summary>Open connections (including ones still in their handshake).</summary>
    public int ConnectionCount => Volatile.Read(ref _sessionList).Length;

    /// <summary>
    /// Connections accepted since start (those dropped at once included). Counted after the connection is listed in
    /// <see cref="ConnectionCount"/>, so a count read first and a <see cref="ConnectionCount"/> read after it agree.
    /// </summary>
    public long ConnectionsAccepted => Volatile.Read(ref _accepted);

    /// <summary>Connections the server closed with a protocol ERROR (malformed frame, auth failure, idle timeout…).</summary>
    public long ProtocolErrorCloses => Volatile.Read(ref _protocolErrorCloses);

    /// <summary>Frames received (complete, parsed).</summary>
    public long FramesIn => Volatile.Read(ref _framesIn);

    /// <summary>Frames sent.</summary>
    public long FramesOut => Volatile.Read(ref _framesOut);

    /// <summary>Bytes of complete frames received.</summary>
    public long BytesIn => Volatile.Read(ref _bytesIn);

    /// <summary>Bytes sent (before TLS).</summary>
    public long BytesOut => Volatile.Read(ref _bytesOut);

    /// <summary>CONFIRM frames the journaler thread sent itself, saving the connection's writer a wake-up.</summary>
    public long JournalerConfirms => Volatile.Read(ref _journalerConfirms);

    /// <summary>Of those sends, the ones the socket took only in part: the connection's writer sent the rest.</summary>
    public long JournalerConfirmsShort => Volatile.Read(ref _journalerConfirmsShort);

    /// <summary>
    /// Where the last read that had to wait for data was resumed: <c>"inline"</c> on the runtime's socket event thread
    /// (socket completions inline: <c>DOTNET_SYSTEM_NET_SOCKETS_INLINE_COMPLETIONS=1</c>, which <c>fastbroker serve</c>
    /// sets by default), <c>"threadpool"</c> on a pool worker, or null before any such read.
    /// </summary>
    public string? SocketCompletions => Volatile.Read(ref _readWakeThread) switch
    {
        1 => "inline",
        2 => "threadpool",
        _ => null,
    };

    /// <summary>Time since start.</summary>
    public TimeSpan Uptime => Stopwatch.GetElapsedTime(_startedAt);

    internal X509Certificate2? Certificate { get; }

    /// <summary>How many times the idle timer fired while its previous check was still running, and did nothing (tests).</summary>
    internal long IdleChecksSkipped => Interlocked.Read(ref _idleChecksSkipped);

    internal Session[] Sessions => Volatile.Read(ref _sessionList);

    internal (byte[] Secret, AccessPolicy Policy)[] Tokens { get; }

    /// <summary>Binds the listening socket, then accepts connections in the background.</summary>
    /// <exception cref="BrokerException"><see cref="BrokerErrorCode.InvalidArgument"/> for bad options.</exception>
    /// <exception cref="SocketException">
    /// The address cannot be bound (e.g. the port is in use), or <see cref="ServerOptions.Host"/> is a host name that does
    /// not resolve (the message names Host and the name).
    /// </exception>
    public static async Task<BrokerServer> StartAsync(Broker broker, ServerOptions options, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(broker);
        ArgumentNullException.ThrowIfNull(options);
        options.Validate();
        var certificate = options.TlsCertificatePath is { } path
            ? X509CertificateLoader.LoadPkcs12FromFile(path, options.TlsCertificatePassword)
            : null;
        var address = await HostAddress.ResolveListenAsync(options.Host, nameof(options.Host), cancellationToken).ConfigureAwait(false);
        var listener = new Socket(address.AddressFamily, SocketType.Stream, ProtocolType.Tcp);
        try
        {
            listener.Bind(new IPEndPoint(address, options.Port));
            listener.Listen(512);
        }
        catch
        {
            listener.Dispose();
            certificate?.Dispose();
            throw;
        }

        var server = new BrokerServer(broker, options, listener, certificate);
        server._acceptLoop = Task.Run(server.AcceptLoopAsync, CancellationToken.None);
        return server;
    }

    /// <summary>
    /// Graceful stop: no new connections, no more reading; each connection gets its outstanding publish
    /// confirmations (waiting at most <paramref name="drainTimeout"/>), then ERROR <c>Closed</c> (6) with CLOSE, then
    /// its socket is closed. The broker stays open (it is the caller's).
    /// </summary>
    public Task StopAsync(TimeSpan drainTimeout)
    {
        lock (_stopGate)
        {
            return _stopping ??= StopCoreAsync(drainTimeout);
        }
    }

    /// <summary>Stops with a 2 s drain (see <see cref="StopAsync"/>).</summary>
    public async ValueTask DisposeAsync() => await StopAsync(TimeSpan.FromSeconds(2)).ConfigureAwait(false);

    internal void Log(string message)
    {
        try
        {
            Options.Log?.Invoke(message);
        }
        catch (Exception)
        {
        }
    }

    internal bool TryEnterEstablished()
    {
        while (true)
        {
            var n = Volatile.Read(ref _established);
            if (n >= Options.MaxConnections)
            {
                return false;
            }

            if (Interlocked.CompareExchange(ref _established, n + 1, n) == n)
            {
                return true;
            }
        }
    }

    internal void LeaveEstablished() => Interlocked.Decrement(ref _established);

    /// <summary>
    /// Logs the line of a close the client caused (a protocol error, a connection that takes no bytes) through the
    /// server's text limiter: a client that reconnects in a loop with the same bad frame, or stops reading each time,
    /// makes one line per 10 s with the count, not one per connection (docs/server.md). A count held back is written
    /// by the idle timer once the text has not been seen for 10 s, and at the latest by <see cref="StopAsync"/>.
    /// </summary>
    internal void LogClose(string line) => _closeLog.Write(Log, line);

    internal void CountProtocolErrorClose() => Interlocked.Increment(ref _protocolErrorCloses);

    internal void CountIn(long frames, long bytes)
    {
        if (frames > 0)
        {
            Interlocked.Add(ref _framesIn, frames);
        }

        if (bytes > 0)
        {
            Interlocked.Add(ref _bytesIn, bytes);
        }
    }

    internal void CountOut(long frames, long bytes)
    {
        Interlocked.Add(ref _framesOut, frames);
        Interlocked.Add(ref _bytesOut, bytes);
    }

    internal void NoteReadWake()
    {
        var seen = Thread.CurrentThread.IsThreadPoolThread ? 2 : 1;
        if (_readWakeThread != seen)
        {
            Volatile.Write(ref _readWakeThread, seen);
        }
    }

    internal void CountJournalerConfirm(long frames, bool complete)
    {
        Interlocked.Add(ref _journalerConfirms, frames);
        if (!complete)
        {
            Interlocked.Increment(ref _journalerConfirmsShort);
        }
    }

    /// <summary>
    /// The lock a durable SUBSCRIBE of <paramref name="durableName"/> holds from the broker's subscribe to its consumer's
    /// add, so that a takeover of the name finds the holder's consumer; give it back with <see cref="ReleaseDurableGate"/>.
    /// One per name, not shared by hash: a SUBSCRIBE that waits under it (a takeover waits for the holder's subscription
    /// to close, a delivery in progress first) holds up later SUBSCRIBEs of that name only, not of names on its stripe.
    /// </summary>
    internal object AcquireDurableGate(string durableName)
    {
        lock (_durableGates)
        {
            if (!_durableGates.TryGetValue(durableName, out var gate))
            {
                gate = new DurableGate();
                _durableGates.Add(durableName, gate);
            }

            gate.Users++;
            return gate;
        }
    }

    /// <summary>Gives back a gate from <see cref="AcquireDurableGate"/> (after leaving it): the last user removes the name's entry.</summary>
    internal void ReleaseDurableGate(string durableName, object gate)
    {
        lock (_durableGates)
        {
            if (--((DurableGate)gate).Users == 0)
            {
                _durableGates.Remove(durableName);
            }
        }
    }

    /// <summary>Names with a durable gate in use (tests: an entry is removed when its last SUBSCRIBE gives it back).</summary>
    internal int DurableGatesInUse
    {
        get
        {
            lock (_durableGates)
            {
                return _durableGates.Count;
            }
        }
    }

    /// <summary>
    /// Ends the subscription of another connection than <paramref name="requester"/> that holds durable name
    /// <paramref name="durableName"/>; false when none does (it is this connection's, an embedded one's, or was just
    /// closed).
    /// </summary>
    internal bool TakeOverDurable(string durableName, Session requester)
    {
        foreach (var session in Sessions)
        {
            if (!ReferenceEquals(session, requester) && session.YieldDurable(durableName, requester.Id))
            {
                Log($"connection {requester.Id} took durable subscription '{durableName}' over from connection {session.Id}");
                return true;
            }
        }

        return false;
    }

    internal void OnSessionEnded(Session session)
    {
        lock (_sessions)
        {
            if (_sessions.Remove(session.Id))
            {
                _sessionList = [.. _sessions.Values];
                if (session.Evicted)
                {
                    Interlocked.Decrement(ref _evicting);
                }
            }
        }
    }

    /// <summary>A session was evicted (<see cref="Session.TryEvict"/>): it still counts in the list until it has ended.</summary>
    internal void NoteEvicted() => Interlocked.Increment(ref _evicting);

    /// <summary>Closes the oldest connection still in its handshake; false when every connection has got past it.</summary>
    private bool EvictOldestInHandshake(int open)
    {
        while (true)
        {
            Session? oldest = null;
            foreach (var s in Sessions)
            {
                if (s.InHandshake && (oldest is null || s.AcceptedAt < oldest.AcceptedAt))
                {
                    oldest = s;
                }
            }

            if (oldest is null)
            {
                return false;
            }

            if (oldest.TryEvict(open))
            {
                return true;
            }
        }
    }

    private async Task AcceptLoopAsync()
    {
        while (await SocketAccept.NextAsync(_listener, _acceptStop.Token, Log).ConfigureAwait(false) is { } socket)
        {
            // Counted once the connection is listed or dropped, never between: a reader that sees the count sees the
            // connection among ConnectionCount (or already gone), so "n accepted and none open" means n were closed.
            // Every slot taken: the oldest connection still in its handshake makes room (one that has said HELLO never
            // does). Dropping the new one instead let peers that never say a word keep every client out for as long as
            // they kept reconnecting; now a client that says HELLO promptly gets in while the silent ones churn.
            var open = ConnectionCount - Volatile.Read(ref _evicting);
            if (open >= Options.MaxConnections + HandshakeSlack && !EvictOldestInHandshake(open))
            {
                Log($"dropping a connection from {socket.RemoteEndPoint}: {ConnectionCount} open");
                socket.Dispose();
                Interlocked.Increment(ref _accepted);
                continue;
            }

            try
            {
                socket.NoDelay = true;
                var session = new Session(this, _broker, socket, Interlocked.Increment(ref _nextConnectionId));
                Options.TestHook?.Invoke("accepted", session.Id);
                lock (_sessions)
                {
                    _sessions[session.Id] = session;
                    _sessionList = [.. _sessions.Values];
                }

                Interlocked.Increment(ref _accepted);
                session.Start();
            }
            catch (Exception e)
            {
                Log($"could not start a session: {e.Message}");
                socket.Dispose();
                Interlocked.Increment(ref _accepted);
            }
        }
    }

    /// <summary>
    /// The idle timer's callback. Checks never overlap: a callback that finds the previous check still running (its log
    /// line held up by a slow <see cref="ServerOptions.Log"/>, a full stdout pipe) returns at once and is counted
    /// (<see cref="IdleChecksSkipped"/>), instead of tying up another pool thread behind it every period.
    /// </summary>
    private void CheckIdle()
    {
        if (Interlocked.CompareExchange(ref _idleCheckRunning, 1, 0) != 0)
        {
            Interlocked.Increment(ref _idleChecksSkipped);
            return;
        }

        try
        {
            var now = Environment.TickCount64;
            var idleMs = (long)(Options.HeartbeatInterval.TotalMilliseconds * 3);
            foreach (var session in Volatile.Read(ref _sessionList))
            {
                session.CheckIdle(now, idleMs);
            }

            // A close line not seen for a whole interval no longer repeats: the count held back of it is written now,
            // not only when (if ever) that close happens again.
            _closeLog.EndQuiet(Log);
        }
        finally
        {
            Volatile.Write(ref _idleCheckRunning, 0);
        }
    }

    private async Task StopCoreAsync(TimeSpan drainTimeout)
    {
        await _acceptStop.CancelAsync().ConfigureAwait(false);
        _listener.Dispose();
        await _acceptLoop.ConfigureAwait(false);
        var deadline = Environment.TickCount64 + (long)Math.Max(0, drainTimeout.TotalMilliseconds);
        var sessions = Volatile.Read(ref _sessionList);
        foreach (var s in sessions)
        {
            s.RequestStop(deadline);
        }

        var all = Task.WhenAll(sessions.Select(s => s.Completion));
        try
        {
            // Each session bounds its own drain by the deadline; the extra seconds cover a peer that stopped reading.
            await all.WaitAsync(drainTimeout + TimeSpan.FromSeconds(5)).ConfigureAwait(false);
        }
        catch (TimeoutException)
        {
            foreach (var s in sessions)
            {
                s.Abort();
            }

            await all.ConfigureAwait(false);
        }

        await _idleTimer.DisposeAsync().ConfigureAwait(false);
        _closeLog.EndAll(Log); // every session has ended: the counts of close lines held back are written, not lost
        Certificate?.Dispose();
        _acceptStop.Dispose();
    }

    /// <summary>A durable name's gate (the lock object) and the SUBSCRIBEs holding or waiting for it (under the map's lock).</summary>
    private sealed class DurableGate
    {
        public int Users;
    }
}
