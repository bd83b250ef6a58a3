using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using FastBroker.Net;

namespace FastBroker.Replication;

/// <summary>
/// The witness of a failover pair: a tiny TCP server granting one lease at a time, so that a primary and a standby
/// cut off from each other can never both be primary. Whoever holds the lease may act as primary; a standby promotes
/// only once it is granted the lease, which bumps the epoch. Wire format: see <see cref="WitnessClient"/>.
/// </summary>
/// <remarks>
/// <para>
/// State: the holder, its epoch and its lease expiry on the monotonic clock (<see cref="Stopwatch"/>). Holder and epoch
/// are persisted (<c>&lt;dataDir&gt;/witness.state</c>, fsync'd) before a grant that changes them is answered; renewals
/// at the same epoch only move the expiry and are not persisted. All state changes happen under one lock.
/// </para>
/// <para>
/// ACQUIRE by the holder renews (even after expiry, if nobody took over) at the same epoch, or, when it asks at a later
/// epoch (one it began itself: a primary whose host restarted), at that one, persisted before the answer, so that no
/// other node is ever granted it. ACQUIRE by anyone else is
/// granted at <c>max(stored epoch, caller epoch) + 1</c> when nobody holds the lease or it expired at least
/// <see cref="WitnessOptions.SafetyMargin"/> ago, and the holder has not reported its standby behind (STANDBY; a
/// forced ACQUIRE skips that check); otherwise DENIED. RELEASE by the holder makes the lease available at
/// once. After a restart the persisted holder's lease counts as valid for <see cref="WitnessOptions.MaxTtl"/>, since
/// the witness cannot know when the last lease it granted ends; for that to hold, a TTL asked above MaxTtl is granted
/// as MaxTtl (the GRANTED answer says so).
/// </para>
/// </remarks>
/// <example>
/// <code>
/// await using var witness = await WitnessServer.StartAsync(WitnessOptions.Default with { Port = 0 });
/// Console.WriteLine($"witness on {witness.EndPoint}, epoch {witness.Epoch}");
/// </code>
/// </example>
public sealed partial class WitnessServer : IAsyncDisposable
{
    private readonly Socket _listener;
    private readonly FileStream _lock;
    private readonly CancellationTokenSource _stop = new();
    private readonly Dictionary<Socket, Task> _connections = [];
    private readonly object _gate = new(); // the lease state and _connections
    private readonly object _stopGate = new();
    private readonly long _marginTicks;
    private readonly int _maxTtlMs;
    private Task _acceptLoop = Task.CompletedTask;
    private Task? _stopping;
    private string? _holder;
    private long _epoch;
    private long _expiry; // Stopwatch timestamp at which the holder's lease ends
    private bool _standbyBehind; // the holder's standby lacks publishes it confirmed: no other node gets the lease
    private (string Caller, string Holder, long Epoch) _lastDenial = ("", "", -1);

    private WitnessServer(WitnessOptions options, Socket listener, FileStream lockFile, string? holder, long epoch, bool standbyBehind)
    {
        Options = options;
        _listener = listener;
        _lock = lockFile;
        EndPoint = (IPEndPoint)listener.LocalEndPoint!;
        _marginTicks = ToTicks(options.SafetyMargin);
        _maxTtlMs = (int)options.MaxTtl.TotalMilliseconds; // at most WitnessProtocol.MaxTtlMs (Validate)
        _holder = holder;
        _epoch = epoch;
        _standbyBehind = standbyBehind;

        // The holder may have been granted up to MaxTtl just before the crash: count that from now.
        _expiry = holder is null ? 0 : Stopwatch.GetTimestamp() + ToTicks(options.MaxTtl);
    }

    /// <summary>The settings it runs with.</summary>
    public WitnessOptions Options { get; }

    /// <summary>The bound address and port (the real port when <see cref="WitnessOptions.Port"/> was 0).</summary>
    public IPEndPoint EndPoint { get; }

    /// <summary>The node the lease was last granted to (whether or not its lease still runs), or null if none ever.</summary>
    public string? Holder
    {
        get
        {
            lock (_gate)
            {
                return _holder;
            }
        }
    }

    /// <summary>The epoch of the last grant to a new holder, or the later one its holder renewed at (0 before the first).</summary>
    public long Epoch
    {
        get
        {
            lock (_gate)
            {
                return _epoch;
            }
        }
    }

    /// <summary>
    /// True while the holder reports its standby behind (it confirmed publishes the standby does not hold): the lease is
    /// granted to no other node, even after it runs out, except by a forced ACQUIRE.
    /// </summary>
    public bool StandbyBehind
    {
        get
        {
            lock (_gate)
            {
                return _standbyBehind;
            }
        }
    }

    /// <summary>Loads the persisted state, binds, then serves in the background.</summary>
    /// <exception cref="ArgumentException">Invalid options.</exception>
    /// <exception cref="InvalidDataException"><c>witness.state</c> exists but cannot be read.</exception>
    /// <exception cref="IOException">The data directory is in use by another witness or cannot be written.</exception>
    /// <exception cref="SocketException">
    /// The address cannot be bound (e.g. the port is in use), or <see cref="WitnessOptions.Host"/> is a host name that does
    /// not resolve (the message names Host and the name).
    /// </exception>
    public static async Task<WitnessServer> StartAsync(WitnessOptions options, CancellationToken ct = default)
    {
        ArgumentNullException.ThrowIfNull(options);
        options.Validate();
        var address = await HostAddress.ResolveListenAsync(options.Host, nameof(options.Host), ct).ConfigureAwait(false);

        Directory.CreateDirectory(options.DataDirectory);

        // Two witnesses on one directory would each believe they own the epoch: FileShare.None is an exclusive flock
        // on Unix, released when the process dies.
        var lockFile = new FileStream(Path.Combine(options.DataDirectory, "witness.lock"), FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.None);
        Socket? listener = null;
        try
        {
            var (holder, epoch, standbyBehind) = WitnessStateFile.Load(options.DataDirectory);
            listener = new Socket(address.AddressFamily, SocketType.Stream, ProtocolType.Tcp);
            listener.Bind(new IPEndPoint(address, options.Port));
            listener.Listen(128);
            var server = new WitnessServer(options, listener, lockFile, holder, epoch, standbyBehind);
            server._acceptLoop = Task.Run(server.AcceptLoopAsync, CancellationToken.None);
            return server;
        }
        catch
        {
            listener?.Dispose();
            await lockFile.DisposeAsync().ConfigureAwait(false);
            throw;
        }
    }

    /// <summary>Stops accepting, closes every connection and waits for them; the state is already on disk.</summary>
    public Task StopAsync()
    {
        lock (_stopGate)
        {
            return _stopping ??= StopCoreAsync();
        }
    }

    /// <summary>Same as <see cref="StopAsync"/>.</summary>
    public async ValueTask DisposeAsync() => await StopAsync().ConfigureAwait(false);

    private async Task StopCoreAsync()
    {
        await _stop.CancelAsync().ConfigureAwait(false);
        _listener.Dispose();
        await _acceptLoop.ConfigureAwait(false);
        Task[] open;
        lock (_gate)
        {
            foreach (var socket in _connections.Keys)
            {
                // FIN first: a socket disposed under a pending receive is closed abortively (RST), and the peer
                // should see an orderly close. Then the pending receive fails at once.
                try
                {
                    socket.Shutdown(SocketShutdown.Both);
                }
                catch (Exception ex) when (ex is SocketException or ObjectDisposedException)
                {
                    // already closed by its connection
                }

                socket.Dispose();
            }

            open = [.. _connections.Values];
        }

        await Task.WhenAll(open).ConfigureAwait(false);
        await _lock.DisposeAsync().ConfigureAwait(false);
        _stop.Dispose();
    }

    private async Task AcceptLoopAsync()
    {
        while (await SocketAccept.NextAsync(_listener, _stop.Token, line => Log($"witness: {line}")).ConfigureAwait(false) is { } socket)
        {
            lock (_gate)
            {
                if (_stop.IsCancellationRequested || _connections.Count >= Options.MaxConnections)
                {
                    socket.Dispose();
                    continue;
                }

                socket.NoDelay = true;
                _connections[socket] = ServeWhenAddedAsync(socket);
            }
        }
    }

    // Yields first, so the connection's task is in _connections before it can try to remove itself.
    private async Task ServeWhenAddedAsync(Socket socket)
    {
        await Task.Yield();
        try
        {
            await ServeAsync(socket).ConfigureAwait(false);
        }
        catch (Exception e)
        {
            Log($"witness: connection failed: {e.GetType().Name}: {e.Message}");
        }
        finally
        {
            socket.Dispose();
            lock (_gate)
            {
                _connections.Remove(socket);
            }
        }
    }

    private void Log(string message)
    {
        try
        {
            Options.Log?.Invoke(message);
        }
        catch (Exception)
        {
            // A failing log sink must not take a grant down with it.
        }
    }

    private static long ToTicks(TimeSpan span) => (long)(span.TotalSeconds * Stopwatch.Frequency);

    private static long ToCeilingMs(long ticks) => ticks <= 0 ? 0 : ((ticks * 1000) + Stopwatch.Frequency - 1) / Stopwatch.Frequency;
}
