using System.Buffers;
using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Text.Json;
using FastBroker.Engine;
using FastBroker.Net;
using FastBroker.Replication.Internal;
using FastBroker.Server;

namespace FastBroker.Replication;

/// <summary>
/// One node of a failover pair. As <see cref="NodeRole.Primary"/> it runs the broker and the protocol server and
/// streams its journals to the standby; as <see cref="NodeRole.Standby"/> it copies them and serves no clients. It
/// decides its role at start (a peer that is primary wins, then a peer that holds more of the log; otherwise the
/// witness lease, or without a witness the node's last role / <see cref="ReplicationOptions.InitialRole"/>), promotes
/// itself when the primary is gone and the witness grants it the lease (without a witness only when its peer defers
/// to it), is promoted by hand with <see cref="PromoteAsync(CancellationToken)"/>,
/// and steps down — rejoining as standby and cutting the tail the new primary never had — as soon as it sees a newer
/// epoch or loses its lease.
/// </summary>
public sealed partial class ReplicatedNode : IAsyncDisposable
{
    /// <summary>STATUS flags.</summary>
    private const byte StatusHeadsKnown = 1;
    private const byte StatusDefers = 2;

    /// <summary>The longest a graceful stop waits for the standby (and the witness) before it releases the lease.</summary>
    private static readonly TimeSpan s_maxHandOverWait = TimeSpan.FromSeconds(5);

    private readonly BrokerOptions _brokerOptions;
    private readonly ServerOptions _serverOptions;
    private readonly ReplicationOptions _options;
    private readonly NodeState _state;
    private readonly PeerAddress _peer;
    private readonly WitnessClient? _witness;
    private readonly Socket _listener;
    private readonly DataDirectoryLock _directoryLock; // from the start to the end of DisposeAsync, through every role
    private readonly CancellationTokenSource _stop = new();
    private readonly SemaphoreSlim _transition = new(1, 1);
    private readonly SemaphoreSlim _watchWake = new(0, int.MaxValue);
    private readonly SemaphoreSlim _standbyWake = new(0, int.MaxValue);
    private readonly Task _acceptLoop;
    private readonly List<string> _events = [];
    private Task _supervisor = Task.CompletedTask;
    private volatile NodeRole _role = NodeRole.Starting;
    private Broker? _broker;
    private BrokerServer? _server;
    private ReplicationGate? _gate;
    private PrimaryReplicator? _replicator;
    private LeaseKeeper? _lease;
    private StandbyReplica? _replica;

    /// <summary>
    /// The journals opened while deciding (their heads answer the peer's probes); handed to the standby loop, or
    /// closed before the broker opens them as primary.
    /// </summary>
    private StandbyReplica? _opened;
    private volatile bool _defersToPeer;
    private long _peerHeadsWaitSince;
    private long _peerAheadSince;
    private bool _peerAheadLogged;
    private string? _divergedLogged;
    private long _peerDivergedSince;
    private bool _rebootWaitLogged;
    private long _journalsOpenedAt;
    private bool _rebootEpochBegun;
    private long _deferredAt;
    private Promotion? _promotion;

    /// <summary>The promotion pending when the supervisor last caught an exception as standby (it retried at once for it).</summary>
    private Promotion? _retriedAfterFailure;
    private long _newerEpochSeen = -1;
    private string? _newerEpochFrom;
    private string? _fenceReason;
    private string _roleWhy = "starting";
    private long _becomingPrimary;
    private long _roleSince = Stopwatch.GetTimestamp();
    private long _linkAttempts;

    // Degrade-to-local with a witness: the witness records the standby behind before anything is confirmed that the
    // standby lacks, and in sync again once it has caught up (the reports never overlap).
    private readonly SemaphoreSlim _standbyReport = new(1, 1);
    private int _reportingBehind;
    private string? _lastBehindFailure;
    private StandbyLink? _syncLink;
    private Dictionary<string, long>? _syncTarget;
    private long _syncDegradedSeen;
    private (string? Holder, long Epoch) _behindDenialLogged;
    private long _noEpochLogged = -1; // the epoch CanBeginEpochAfter last said no epoch follows
    private string? _leaseRefusalLogged; // the witness's last ERROR answer to the standby's ask, logged once (OnLeaseRefused)
    private long _leaseAskAfter; // Stopwatch timestamp: no ask for the lease before it (OnLeaseRefused)

    private ReplicatedNode(BrokerOptions brokerOptions, ServerOptions serverOptions, ReplicationOptions options, NodeState state, Socket listener, DataDirectoryLock directoryLock)
    {
        _directoryLock = directoryLock;
        _brokerOptions = brokerOptions with { DataDirectory = options.DataDirectory };
        _serverOptions = serverOptions;
        _options = options;
        _state = state;
        _peer = PeerAddress.Parse(options.Peer, nameof(options.Peer), line => Log($"peer {line}"));
        _witness = options.Witness is { } w ? new WitnessClient(w, options.EffectiveWitnessCallTimeout) { Log = Log } : null;
        _listener = listener;
        ReplicationEndPoint = (IPEndPoint)listener.LocalEndPoint!;
        _acceptLoop = Task.Run(AcceptLoopAsync);
    }

    /// <summary>The role now.</summary>
    public NodeRole Role => _role;

    /// <summary>The epoch this node serves (primary) or follows (standby).</summary>
    public long Epoch => _state.Epoch;

    /// <summary>This node's name.</summary>
    public string NodeId => _options.NodeId;

    /// <summary>The replication listener (standby links and peer probes).</summary>
    public IPEndPoint ReplicationEndPoint { get; }

    /// <summary>The broker while primary, else null.</summary>
    public Broker? Broker => Volatile.Read(ref _broker);

    /// <summary>The standby's copy while standby, else null (tests).</summary>
    internal StandbyReplica? Replica => _replica;

    /// <summary>The primary role's replicator (tests).</summary>
    internal PrimaryReplicator? Replicator => _replicator;

    /// <summary>This node's epoch history as it holds it in memory, in its saved text form (tests).</summary>
    internal string EpochHistory => _state.FormatHistory();

    /// <summary>How many times the standby loop has tried to follow its peer (tests).</summary>
    internal long LinkAttempts => Interlocked.Read(ref _linkAttempts);

    /// <summary>The protocol server while primary, else null.</summary>
    public BrokerServer? Server => Volatile.Read(ref _server);

    /// <summary>Raised (on a background thread) after every role change.</summary>
    public event Action<NodeRole, long>? RoleChanged;

    /// <summary>
    /// Starts the node: binds the replication listener, then decides its role in the background (see the class
    /// remarks); <see cref="Role"/> is <see cref="NodeRole.Starting"/> until then. Every option is checked first,
    /// <paramref name="serverOptions"/> included (its server starts only when the node becomes primary), and a host name
    /// in <see cref="ReplicationOptions.Host"/> or <see cref="ServerOptions.Host"/> must resolve now.
    /// </summary>
    /// <exception cref="ArgumentException">Invalid <paramref name="options"/>.</exception>
    /// <exception cref="BrokerException">
    /// <see cref="BrokerErrorCode.InvalidArgument"/>: invalid <paramref name="brokerOptions"/> or <paramref name="serverOptions"/>;
    /// <see cref="BrokerErrorCode.ResourceExhausted"/>: another broker or node has the data directory open (its
    /// <c>broker.lock</c> is held; the node holds it from its start until it is disposed, through every role).
    /// </exception>
    /// <exception cref="SocketException">
    /// A host name that does not resolve (the message names the option and the name), or the replication address cannot
    /// be bound.
    /// </exception>
    public static async Task<ReplicatedNode> StartAsync(BrokerOptions brokerOptions, ServerOptions serverOptions, ReplicationOptions options, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(brokerOptions);
        ArgumentNullException.ThrowIfNull(serverOptions);
        ArgumentNullException.ThrowIfNull(options);
        options.Validate();
        brokerOptions.Validate();
        serverOptions.Validate();
        cancellationToken.ThrowIfCancellationRequested();

        // Both listeners bind by the one rule (HostAddress.ListenRule); the server's is only checked here, as it binds
        // at each promotion, but a name that does not resolve is better refused now than at the first failover.
        var address = await HostAddress.ResolveListenAsync(options.Host, nameof(options.Host), cancellationToken).ConfigureAwait(false);
        _ = await HostAddress.ResolveListenAsync(serverOptions.Host, $"{nameof(ServerOptions)}.{nameof(ServerOptions.Host)}", cancellationToken).ConfigureAwait(false);
        // The data directory's lock, before anything in it is read: held through every role (the standby's copy and the
        // primary's broker, which takes none of its own), so no other broker or node can open it between two roles.
        var directoryLock = DataDirectoryLock.Acquire(options.DataDirectory);
        Socket? listener = null;
        ReplicatedNode node;
        try
        {
            var state = NodeState.Load(options.DataDirectory); // a node.state it cannot go on from refuses the start, before binding
            listener = new Socket(address.AddressFamily, SocketType.Stream, ProtocolType.Tcp);
            listener.Bind(new IPEndPoint(address, options.Port));
            listener.Listen(16);
            node = new ReplicatedNode(brokerOptions, serverOptions, options, state, listener, directoryLock);
        }
        catch
        {
            listener?.Dispose();
            directoryLock.Dispose();
            throw;
        }

        node._supervisor = Task.Run(node.SuperviseAsync);
        return node;
    }

    /// <summary>Waits until the node has the role (or the timeout passes: false).</summary>
    public async Task<bool> WaitForRoleAsync(NodeRole role, TimeSpan timeout)
    {
        var deadline = Stopwatch.GetTimestamp() + (long)(timeout.TotalSeconds * Stopwatch.Frequency);
        while (_role != role)
        {
            if (Stopwatch.GetTimestamp() > deadline)
            {
                return false;
            }

            await Task.Delay(10).ConfigureAwait(false);
        }

        return true;
    }

    /// <summary>
    /// Manual promotion of the standby. With a witness the lease is asked for first (refused while the primary still
    /// holds it); without one the epoch simply increments — the operator vouches that the old primary is gone (if it
    /// is not, it steps down when it sees the newer epoch). Returns the new epoch. Ends at once whatever the standby
    /// waits for: its pause between two attempts to follow its primary (half a heartbeat interval), its pause after an
    /// unexpected failure (a heartbeat interval), and a link attempt under way, its connect (up to 1 s) included.
    /// </summary>
    /// <remarks>
    /// Cancelling <paramref name="cancellationToken"/> withdraws the request while the standby has not taken it up yet
    /// (it does at once, unless it is busy with a probe of its peer or a request to the witness): the task is then
    /// cancelled, the node stays standby and follows its primary again, and no promotion follows from this call. Once
    /// taken up, the promotion is carried through and the token no longer applies: the task completes with its outcome
    /// (the new epoch, or why it was refused or failed). So an <see cref="OperationCanceledException"/> always means no promotion.
    /// </remarks>
    /// <exception cref="InvalidOperationException">
    /// Not a standby, the witness refused the lease, or the promotion failed once taken up (its reason in the message):
    /// the node stays standby and can be promoted again.
    /// </exception>
    /// <exception cref="OperationCanceledException">Withdrawn before the standby took it up; the node stays standby.</exception>
    public Task<long> PromoteAsync(CancellationToken cancellationToken = default) => PromoteAsync(force: false, cancellationToken);

    /// <summary>
    /// As <see cref="PromoteAsync(CancellationToken)"/>; with <paramref name="force"/> the witness grants the lease (once
    /// the old primary's has run out) even though the old primary reported this standby behind: it confirmed publishes
    /// as local (<see cref="ReplicationOptions.DegradeToLocal"/>) that this node does not hold, and they are lost. For an
    /// operator who knows the old primary will not come back.
    /// </summary>
    /// <exception cref="InvalidOperationException">
    /// Not a standby, the witness refused the lease, or the promotion failed once taken up (its reason in the message):
    /// the node stays standby and can be promoted again.
    /// </exception>
    public async Task<long> PromoteAsync(bool force, CancellationToken cancellationToken = default)
    {
        var promotion = RequestPromotion(force, cancellationToken);
        using var reg = cancellationToken.Register(() => Withdraw(promotion, cancellationToken));
        return await promotion.Task.ConfigureAwait(false);
    }

    /// <summary>Checks and sets the request, then stops the standby's link and pause so that its loop takes it up.</summary>
    private Promotion RequestPromotion(bool force, CancellationToken cancellationToken)
    {
        cancellationToken.ThrowIfCancellationRequested();
        var promotion = new Promotion(force);
        if (_role == NodeRole.Primary)
        {
            throw new InvalidOperationException($"node '{NodeId}' is already the primary (epoch {Epoch})");
        }

        if (_role != NodeRole.Standby)
        {
            throw new InvalidOperationException($"node '{NodeId}' is {_role.ToString().ToLowerInvariant()}, not standby: promote it once it has decided its role");
        }

        if (_defersToPeer && _replica?.PrimaryId is null)
        {
            // The peer holds more of the log and is taking over (it may be promoting itself right now): promoting this
            // node as well would make two primaries, and cut the records only the peer holds.
            throw new InvalidOperationException($"node '{NodeId}' defers to its peer, which holds more of the log: promote the peer instead");
        }

        if (Interlocked.CompareExchange(ref _promotion, promotion, null) is not null)
        {
            throw new InvalidOperationException("a promotion is already in progress");
        }

        // Stop following (ending a connect under way), and end the standby loop's pause: between two link attempts
        // (half a heartbeat interval), or after an unexpected failure (a heartbeat interval).
        _replica?.Dispose();
        _standbyWake.Release();
        return promotion;
    }

    /// <summary>
    /// Cancels <paramref name="promotion"/> if the standby loop has not taken it up: it will never act on it. The loop
    /// then starts a fresh copy (the request stopped the one it had) and follows its primary again.
    /// </summary>
    private void Withdraw(Promotion promotion, CancellationToken cancellationToken)
    {
        if (!promotion.TryWithdraw())
        {
            return; // taken up: carried through, the caller gets its outcome
        }

        Interlocked.CompareExchange(ref _promotion, null, promotion);
        promotion.TrySetCanceled(cancellationToken);
        Log("the manual promotion was withdrawn (cancelled) before the standby took it up: still standby");
        _standbyWake.Release();
    }

    /// <summary>A JSON document of role, epoch, peer, positions and replication lag (<c>fastbroker status</c>, admin <c>/status</c>).</summary>
    public string GetStatusJson()
    {
        var buffer = new ArrayBufferWriter<byte>(1024);
        using (var w = new Utf8JsonWriter(buffer, new JsonWriterOptions { Indented = true, Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping }))
        {
            WriteStatus(w);
        }

        return System.Text.Encoding.UTF8.GetString(buffer.WrittenSpan);
    }

    /// <summary>
    /// Starts the admin HTTP endpoint of this node: <c>/status</c>, <c>POST /promote</c>, <c>/health</c>, <c>/metrics</c>,
    /// and <c>/primary</c> and <c>/standby[?lag=N]</c> (200 only on the serving primary, and on a standby that hears from
    /// the primary it follows within <see cref="ReplicationOptions.StandbyCheckSilence"/> and, with <c>lag</c>, lacks at
    /// most N records of it; 503 elsewhere, with a one-line reason in the body).
    /// </summary>
    public Task<AdminHttpServer> StartAdminAsync(string host, int port, CancellationToken cancellationToken = default) =>
        AdminHttpServer.StartAsync(() => (Broker, Server), Route, host, port, cancellationToken);

    /// <summary>
    /// Stops the node: closes clients, drains and flushes as primary (releasing the lease), or closes the copy as standby;
    /// then releases the data directory's lock (its <c>broker.lock</c> stays).
    /// </summary>
    public async ValueTask DisposeAsync()
    {
        if (_stop.IsCancellationRequested)
        {
            return;
        }

        try
        {
            await StopNodeAsync().ConfigureAwait(false);
        }
        finally
        {
            _directoryLock.Dispose(); // the last: nothing of the node writes in the directory any more
        }
    }

    private async Task StopNodeAsync()
    {
        await _stop.CancelAsync().ConfigureAwait(false);
        _replica?.Dispose();
        _opened?.Dispose();
        _listener.Dispose();
        _promotion?.TrySetCanceled();
        await _supervisor.ConfigureAwait(false);
        EndHeldBackLines(); // the supervisor has ended: nothing writes to these limiters any more
        await _acceptLoop.ConfigureAwait(false);
        await _transition.WaitAsync().ConfigureAwait(false);
        try
        {
            if (_role == NodeRole.Primary)
            {
                await StopPrimaryAsync("node stopping", release: true).ConfigureAwait(false);
            }
        }
        finally
        {
            _transition.Release();
        }

        if (Interlocked.Exchange(ref _opened, null) is { } opened)
        {
            opened.CloseJournals();
        }

        if (_witness is not null)
        {
            await _witness.DisposeAsync().ConfigureAwait(false);
        }
    }

    private void SetRole(NodeRole role, string why)
    {
        _roleWhy = why;
        _role = role;
        _roleSince = Stopwatch.GetTimestamp();
        if (role is NodeRole.Standby or NodeRole.Primary)
        {
            _state.SetRole(role);
        }

        Log($"{role} (epoch {_state.Epoch}): {why}");
        RoleChanged?.Invoke(role, _state.Epoch);
    }

    private void Log(string line)
    {
        var stamped = $"{DateTime.UtcNow:HH:mm:ss.fff} node '{NodeId}': {line}";
        lock (_events)
        {
            _events.Add(stamped);
            if (_events.Count > 50)
            {
                _events.RemoveAt(0);
            }
        }

        _options.Log?.Invoke(stamped);
    }

    private async Task Delay(TimeSpan delay)
    {
        try
        {
            await Task.Delay(delay, _stop.Token).ConfigureAwait(false);
        }
        catch (OperationCanceledException)
        {
        }
    }

    /// <summary>
    /// The supervisor's pause after an unexpected exception: a heartbeat interval. As standby it is a pause of the standby
    /// loop (<see cref="StandbyDelay"/>): a promotion asked meanwhile ends it, and one asked before is acted on at once —
    /// once: if the loop fails again before it has acted on that request, the next pause is not skipped for it, so a
    /// failure that repeats does not make the loop spin.
    /// </summary>
    private Task PauseAfterFailureAsync()
    {
        if (_role != NodeRole.Standby)
        {
            return Delay(_options.HeartbeatInterval);
        }

        var pending = Volatile.Read(ref _promotion);
        var retried = pending is not null && ReferenceEquals(Interlocked.Exchange(ref _retriedAfterFailure, pending), pending);
        return StandbyDelay(_options.HeartbeatInterval, evenIfPromotionPending: retried);
    }

    /// <summary>
    /// A pause of the standby loop: as <see cref="Delay"/>, and also ended by <see cref="PromoteAsync(bool, CancellationToken)"/>
    /// (at once if one is under way, unless <paramref name="evenIfPromotionPending"/>), so that a manual promotion does
    /// not wait for the pause (15 s of a 30 s heartbeat interval) before the loop looks at it.
    /// </summary>
    private async Task StandbyDelay(TimeSpan delay, bool evenIfPromotionPending = false)
    {
        // Wake-ups of promotions the loop has already handled (a refused one): at most one each.
        while (_standbyWake.Wait(0))
        {
        }

        // After the drain: a promotion set (or withdrawn) after this read releases the semaphore after it, and ends the
        // wait below. A withdrawn one left the replica stopped: the loop replaces it at once.
        if ((!evenIfPromotionPending && Volatile.Read(ref _promotion) is not null) || Volatile.Read(ref _replica) is { Stopping: true })
        {
            return;
        }

        try
        {
            await _standbyWake.WaitAsync(delay, _stop.Token).ConfigureAwait(false);
        }
        catch (OperationCanceledException)
        {
        }
    }
}
