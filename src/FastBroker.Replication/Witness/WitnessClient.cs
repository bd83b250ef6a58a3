using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Text;

namespace FastBroker.Replication;

/// <summary>
/// Talks to a <see cref="WitnessServer"/>: one TCP connection, kept open and re-opened after any failure, one request at
/// a time. A call never throws for a witness that cannot be reached: it answers <see cref="LeaseResultKind.Unreachable"/>
/// within <see cref="CallTimeout"/>, because the caller (a primary renewing, a standby probing) must keep deciding on time
/// whatever the network does. Nor for an answer outside the protocol, malformed or with a number out of its range (a
/// granted epoch of 0 or 2^63 - 1, a TTL outside 50..60000 ms, a remaining time outside 0..2^31 - 1 ms, a negative
/// epoch): that call answers <see cref="LeaseResultKind.Error"/> ("witness … answered an invalid TTL (…)"), and a
/// caller treats it as it treats an unreachable witness, never as a lease.
/// </summary>
/// <remarks>
/// Wire format (TCP, ASCII lines of at most 256 bytes ending in <c>'\n'</c>, one response per request, several requests
/// per connection): <c>ACQUIRE &lt;nodeId&gt; &lt;epoch&gt; &lt;ttlMs&gt; [force]</c> → <c>GRANTED &lt;epoch&gt; &lt;ttlMs&gt;</c> or
/// <c>DENIED &lt;holder&gt; &lt;epoch&gt; &lt;remainingMs&gt;</c>; <c>RELEASE &lt;nodeId&gt;</c> → <c>RELEASED</c>;
/// <c>STATUS</c> → <c>STATUS &lt;holder|-&gt; &lt;epoch&gt; &lt;remainingMs&gt;</c>; <c>STANDBY &lt;nodeId&gt; &lt;epoch&gt;
/// in-sync|behind</c> → <c>STANDBY in-sync|behind</c>; GRANTED, DENIED and STATUS end in <c> behind</c> while the
/// holder's standby is reported behind; a bad request → <c>ERROR &lt;reason&gt;</c>, after which the witness closes
/// the connection.
/// </remarks>
/// <example>
/// <code>
/// await using var witness = new WitnessClient("10.0.0.3:7402");
/// var lease = await witness.AcquireAsync("node-b", epoch: 4, TimeSpan.FromSeconds(2), ct);
/// if (lease.IsGranted) { /* promote at lease.Epoch */ }
/// </code>
/// </example>
public sealed class WitnessClient : IAsyncDisposable
{
    /// <summary>The default <see cref="CallTimeout"/>: 1 s, a few round trips on a bad LAN and well under any useful TTL.</summary>
    public static readonly TimeSpan DefaultCallTimeout = TimeSpan.FromSeconds(1);

    private readonly Internal.PeerAddress _address;
    private readonly SemaphoreSlim _callGate = new(1, 1);
    private readonly byte[] _buffer = new byte[WitnessProtocol.MaxLineBytes];
    private Socket? _socket;
    private int _disposed;

    /// <summary>A client for the witness at <paramref name="endpoint"/> with a 1 s call timeout. Connects on first use.</summary>
    /// <param name="endpoint"><c>host:port</c> as <see cref="ReplicationOptions.EndpointRule"/>: <c>10.0.0.3:7402</c>, <c>[::1]:7402</c>, <c>witness-1:7402</c>; a host name is resolved at every connect.</param>
    /// <exception cref="ArgumentException">The endpoint is not one (<see cref="ReplicationOptions.IsValidEndpoint(string?)"/>); the exception names <paramref name="endpoint"/>.</exception>
    public WitnessClient(string endpoint)
        : this(endpoint, DefaultCallTimeout)
    {
    }

    /// <summary>A client for the witness at <paramref name="endpoint"/>. Connects on first use.</summary>
    /// <param name="endpoint"><c>host:port</c> as <see cref="ReplicationOptions.EndpointRule"/>: <c>10.0.0.3:7402</c>, <c>[::1]:7402</c>, <c>witness-1:7402</c>; a host name is resolved at every connect.</param>
    /// <param name="callTimeout">How long one call (resolving a host name and connecting included) may take before it answers Unreachable.</param>
    /// <exception cref="ArgumentException">The endpoint is not one (<see cref="ReplicationOptions.IsValidEndpoint(string?)"/>; the exception names <paramref name="endpoint"/>), or the timeout is not positive.</exception>
    public WitnessClient(string endpoint, TimeSpan callTimeout)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(endpoint);
        ArgumentOutOfRangeException.ThrowIfLessThanOrEqual(callTimeout, TimeSpan.Zero);
        _address = Internal.PeerAddress.Parse(endpoint, nameof(endpoint));
        Endpoint = endpoint;
        CallTimeout = callTimeout;
    }

    /// <summary>The endpoint as given.</summary>
    public string Endpoint { get; }

    /// <summary>How long one call may take (connect, send and answer) before it answers Unreachable.</summary>
    public TimeSpan CallTimeout { get; }

    /// <summary>
    /// Told, once per call, an answer that is not in the witness protocol (<see cref="LeaseResultKind.Error"/>): one
    /// that does not parse, or a number out of the protocol's range. <see cref="ReplicatedNode"/> passes its log.
    /// </summary>
    internal Action<string>? Log { get; init; }

    /// <summary>
    /// Asks for the lease (or renews it, when <paramref name="nodeId"/> holds it). Granted: the caller holds it for
    /// <see cref="LeaseResult.Ttl"/>, counted by the witness from when it answered; a caller that counts from before it
    /// sent the request is on the safe side (<see cref="LeaseKeeper"/> does).
    /// </summary>
    /// <param name="nodeId">The caller: 1-64 characters of [A-Za-z0-9._-].</param>
    /// <param name="epoch">
    /// The caller's current epoch; a new grant is above both this and the witness's. The holder renews at the witness's
    /// epoch, or at this one if it is later (an epoch the holder began itself, which the witness then records).
    /// </param>
    /// <param name="ttl">The lease length asked for, 50 ms to 60 s.</param>
    /// <param name="ct">Cancels the call (throws <see cref="OperationCanceledException"/>; the connection is reset).</param>
    /// <exception cref="ArgumentException">Invalid node id, epoch or TTL.</exception>
    public Task<LeaseResult> AcquireAsync(string nodeId, long epoch, TimeSpan ttl, CancellationToken ct = default) => AcquireAsync(nodeId, epoch, ttl, force: false, ct);

    /// <summary>
    /// As <see cref="AcquireAsync(string, long, TimeSpan, CancellationToken)"/>; with <paramref name="force"/> the lease is
    /// granted once it runs out even if its holder reported its standby behind (<see cref="LeaseResult.StandbyBehind"/>):
    /// an operator's decision that the holder is gone for good, accepting the loss of what it confirmed as local.
    /// </summary>
    /// <exception cref="ArgumentException">Invalid node id, epoch or TTL.</exception>
    public Task<LeaseResult> AcquireAsync(string nodeId, long epoch, TimeSpan ttl, bool force, CancellationToken ct = default)
    {
        WitnessProtocol.ValidateNodeId(nodeId, nameof(nodeId));
        ArgumentOutOfRangeException.ThrowIfNegative(epoch);
        ArgumentOutOfRangeException.ThrowIfEqual(epoch, long.MaxValue);
        var ttlMs = WitnessProtocol.ToTtlMs(ttl, nameof(ttl));
        return CallAsync(string.Create(CultureInfo.InvariantCulture, $"ACQUIRE {nodeId} {epoch} {ttlMs}{(force ? " force" : "")}\n"), ct);
    }

    /// <summary>
    /// The holder reports whether its standby holds everything it confirmed: <paramref name="behind"/> before it confirms
    /// anything the standby does not hold (degrading to local), false once the standby has caught up. While behind, the
    /// witness grants the lease to no other node. Answers <see cref="LeaseResultKind.StandbyRecorded"/> once the witness
    /// has it on disk; <see cref="LeaseResultKind.Denied"/> when <paramref name="nodeId"/> does not hold the lease at
    /// <paramref name="epoch"/>.
    /// </summary>
    /// <exception cref="ArgumentException">Invalid node id or epoch.</exception>
    public Task<LeaseResult> SetStandbyAsync(string nodeId, long epoch, bool behind, CancellationToken ct = default)
    {
        WitnessProtocol.ValidateNodeId(nodeId, nameof(nodeId));
        ArgumentOutOfRangeException.ThrowIfNegative(epoch);
        return CallAsync(string.Create(CultureInfo.InvariantCulture, $"STANDBY {nodeId} {epoch} {(behind ? "behind" : "in-sync")}\n"), ct);
    }

    /// <summary>
    /// Gives the lease up so another node can be granted it at once; <see cref="LeaseResultKind.Released"/> also when
    /// <paramref name="nodeId"/> did not hold it. Stop acting as primary before calling this.
    /// </summary>
    /// <exception cref="ArgumentException">Invalid node id.</exception>
    public Task<LeaseResult> ReleaseAsync(string nodeId, CancellationToken ct = default)
    {
        WitnessProtocol.ValidateNodeId(nodeId, nameof(nodeId));
        return CallAsync($"RELEASE {nodeId}\n", ct);
    }

    /// <summary>The holder, its epoch and what is left of its lease (<see cref="LeaseResultKind.Status"/>).</summary>
    public Task<LeaseResult> StatusAsync(CancellationToken ct = default) => CallAsync("STATUS\n", ct);

    /// <summary>Closes the connection; later calls throw <see cref="ObjectDisposedException"/>.</summary>
    public ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) == 0)
        {
            Interlocked.Exchange(ref _socket, null)?.Dispose(); // an in-flight call fails fast and answers Unreachable
        }

        return ValueTask.CompletedTask;
    }

    private async Task<LeaseResult> CallAsync(string request, CancellationToken ct)
    {
        ObjectDisposedException.ThrowIf(Volatile.Read(ref _disposed) != 0, this);
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(ct);
        timeout.CancelAfter(CallTimeout); // waiting for another caller's turn counts too
        try
        {
            await _callGate.WaitAsync(timeout.Token).ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (!ct.IsCancellationRequested)
        {
            return LeaseResult.Failed(LeaseResultKind.Unreachable, $"witness {Endpoint}: no turn within {CallTimeout.TotalMilliseconds:0} ms (another call is in progress)");
        }

        try
        {
            var bytes = Encoding.ASCII.GetBytes(request);

            // A kept connection may have died since its last use (witness restarted): one retry on a fresh one. Safe to
            // repeat: a second ACQUIRE by the same node is a renewal at the same epoch, a second RELEASE or STANDBY is a
            // no-op.
            for (var attempt = 0; ; attempt++)
            {
                var socket = _socket;
                var reused = socket is not null;
                try
                {
                    socket ??= _socket = await ConnectAsync(timeout.Token).ConfigureAwait(false);
                    await socket.SendAsync(bytes, SocketFlags.None, timeout.Token).ConfigureAwait(false);
                    var length = await ReadLineAsync(socket, timeout.Token).ConfigureAwait(false);
                    if (length < 0)
                    {
                        Reset(socket);
                        if (reused && attempt == 0)
                        {
                            continue;
                        }

                        return LeaseResult.Failed(LeaseResultKind.Unreachable, $"witness {Endpoint}: connection closed before an answer");
                    }

                    var line = _buffer.AsSpan(0, length);
                    if (!WitnessProtocol.TryParseResponse(line, out var result, out var invalid))
                    {
                        // Not an answer of the protocol: an error of this call, as for a witness that cannot be reached
                        // (a caller never acts on it). The connection is out of step with the witness: a fresh one next.
                        Reset(socket);
                        var answer = Encoding.ASCII.GetString(line);
                        var message = invalid is null
                            ? $"witness {Endpoint}: unexpected answer '{answer}'"
                            : $"witness {Endpoint} answered an invalid {invalid} ('{answer}')";
                        Log?.Invoke(message);
                        return LeaseResult.Failed(LeaseResultKind.Error, message) with { Logged = Log is not null };
                    }

                    if (result.Kind == LeaseResultKind.Error)
                    {
                        Reset(socket); // the witness closes the connection after an ERROR
                    }

                    return result;
                }
                catch (OperationCanceledException) when (!ct.IsCancellationRequested)
                {
                    Reset(socket);
                    return LeaseResult.Failed(LeaseResultKind.Unreachable, $"witness {Endpoint}: no answer within {CallTimeout.TotalMilliseconds:0} ms");
                }
                catch (OperationCanceledException)
                {
                    Reset(socket); // an answer may still arrive: the connection is out of step
                    throw;
                }
                catch (Exception e) when (e is SocketException or IOException or ObjectDisposedException)
                {
                    Reset(socket);
                    if (reused && attempt == 0 && Volatile.Read(ref _disposed) == 0)
                    {
                        continue;
                    }

                    return LeaseResult.Failed(LeaseResultKind.Unreachable, $"witness {Endpoint}: {e.Message}");
                }
            }
        }
        finally
        {
            _callGate.Release();
        }
    }

    private async Task<Socket> ConnectAsync(CancellationToken ct)
    {
        // A host name is resolved at every connect (a reconnect follows a witness whose name moved), bounded by the
        // call's timeout; one that does not resolve throws a SocketException naming it.
        var addresses = await _address.ResolveAsync(ct).ConfigureAwait(false);
        SocketException? last = null;
        foreach (var address in addresses)
        {
            var socket = new Socket(address.AddressFamily, SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
            try
            {
                await socket.ConnectAsync(new IPEndPoint(address, _address.Port), ct).ConfigureAwait(false);
                if (Volatile.Read(ref _disposed) != 0)
                {
                    throw new ObjectDisposedException(nameof(WitnessClient));
                }

                return socket;
            }
            catch (SocketException e)
            {
                socket.Dispose();
                last = e;
            }
            catch
            {
                socket.Dispose();
                throw;
            }
        }

        throw last ?? new SocketException((int)SocketError.HostNotFound);
    }

    /// <summary>Reads one response line into <see cref="_buffer"/>; its length without the terminator, or -1 at EOF.</summary>
    private async Task<int> ReadLineAsync(Socket socket, CancellationToken ct)
    {
        var filled = 0;
        while (true)
        {
            var n = await socket.ReceiveAsync(_buffer.AsMemory(filled), SocketFlags.None, ct).ConfigureAwait(false);
            if (n == 0)
            {
                return -1;
            }

            filled += n;
            var end = Array.IndexOf(_buffer, (byte)'\n', 0, filled);
            if (end >= 0)
            {
                if (end != filled - 1)
                {
                    throw new IOException("the witness sent more than one line for one request");
                }

                return end > 0 && _buffer[end - 1] == (byte)'\r' ? end - 1 : end;
            }

            if (filled == _buffer.Length)
            {
                throw new IOException($"the witness sent a line longer than {WitnessProtocol.MaxLineBytes} bytes");
            }
        }
    }

    private void Reset(Socket? socket)
    {
        if (socket is not null)
        {
            Interlocked.CompareExchange(ref _socket, null, socket);
            socket.Dispose();
        }
    }
}
