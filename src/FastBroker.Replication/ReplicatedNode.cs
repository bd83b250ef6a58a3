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
public sealed class ReplicatedNode : IAsyncDisposable
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
    private readonly IPEndPoint _peer;
    private readonly WitnessClient? _witness;
    private readonly Socket _listener;
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
    private bool _rebootWaitLogged;
    private long _journalsOpenedAt;
    private bool _rebootEpochBegun;
    private long _deferredAt;
    private Promotion? _promotion;
    private long _newerEpochSeen = -1;
    private string? _fenceReason;
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

    private ReplicatedNode(BrokerOptions brokerOptions, ServerOptions serverOptions, ReplicationOptions options, Socket listener)
    {
        _brokerOptions = brokerOptions with { DataDirectory = options.DataDirectory };
        _serverOptions = serverOptions;
        _options = options;
        _state = NodeState.Load(options.DataDirectory);
        _peer = Wire.ParseEndPoint(options.Peer);
        _witness = options.Witness is { } w ? new WitnessClient(w) : null;
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

    /// <summary>How many times the standby loop has tried to follow its peer (tests).</summary>
    internal long LinkAttempts => Interlocked.Read(ref _linkAttempts);

    /// <summary>The protocol server while primary, else null.</summary>
    public BrokerServer? Server => Volatile.Read(ref _server);

    /// <summary>Raised (on a background thread) after every role change.</summary>
    public event Action<NodeRole, long>? RoleChanged;

    /// <summary>
    /// Starts the node: binds the replication listener, then decides its role in the background (see the class
    /// remarks); <see cref="Role"/> is <see cref="NodeRole.Starting"/> until then.
    /// </summary>
    public static Task<ReplicatedNode> StartAsync(BrokerOptions brokerOptions, ServerOptions serverOptions, ReplicationOptions options, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(brokerOptions);
        ArgumentNullException.ThrowIfNull(serverOptions);
        ArgumentNullException.ThrowIfNull(options);
        options.Validate();
        brokerOptions.Validate();
        cancellationToken.ThrowIfCancellationRequested();
        Directory.CreateDirectory(options.DataDirectory);
        var address = options.Host == "localhost" ? IPAddress.Loopback : IPAddress.Parse(options.Host);
        var listener = new Socket(address.AddressFamily, SocketType.Stream, ProtocolType.Tcp);
        try
        {
            listener.Bind(new IPEndPoint(address, options.Port));
            listener.Listen(16);
        }
        catch
        {
            listener.Dispose();
            throw;
        }

        var node = new ReplicatedNode(brokerOptions, serverOptions, options, listener);
        node._supervisor = Task.Run(node.SuperviseAsync);
        return Task.FromResult(node);
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
    /// is not, it steps down when it sees the newer epoch). Returns the new epoch. Ends the standby's pause between two
    /// attempts to follow its primary (half a heartbeat interval) at once.
    /// </summary>
    /// <remarks>
    /// Cancelling <paramref name="cancellationToken"/> withdraws the request while the standby has not taken it up yet
    /// (it does at once, unless it is busy with a probe of its peer or a request to the witness): the task is then
    /// cancelled, the node stays standby and follows its primary again, and no promotion follows from this call. Once
    /// taken up, the promotion is carried through and the token no longer applies: the task completes with its outcome
    /// (the new epoch, or why it was refused). So an <see cref="OperationCanceledException"/> always means no promotion.
    /// </remarks>
    /// <exception cref="InvalidOperationException">Not a standby, or the witness refused the lease.</exception>
    /// <exception cref="OperationCanceledException">Withdrawn before the standby took it up; the node stays standby.</exception>
    public Task<long> PromoteAsync(CancellationToken cancellationToken = default) => PromoteAsync(force: false, cancellationToken);

    /// <summary>
    /// As <see cref="PromoteAsync(CancellationToken)"/>; with <paramref name="force"/> the witness grants the lease (once
    /// the old primary's has run out) even though the old primary reported this standby behind: it confirmed publishes
    /// as local (<see cref="ReplicationOptions.DegradeToLocal"/>) that this node does not hold, and they are lost. For an
    /// operator who knows the old primary will not come back.
    /// </summary>
    /// <exception cref="InvalidOperationException">Not a standby, or the witness refused the lease.</exception>
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

        // Stop following, and end the standby loop's pause between two link attempts (half a heartbeat interval).
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
    /// the primary it follows and, with <c>lag</c>, lacks at most N records of it).
    /// </summary>
    public Task<AdminHttpServer> StartAdminAsync(string host, int port, CancellationToken cancellationToken = default) =>
        AdminHttpServer.StartAsync(() => (Broker, Server), Route, host, port, cancellationToken);

    /// <summary>Stops the node: closes clients, drains and flushes as primary (releasing the lease), or closes the copy as standby.</summary>
    public async ValueTask DisposeAsync()
    {
        if (_stop.IsCancellationRequested)
        {
            return;
        }

        await _stop.CancelAsync().ConfigureAwait(false);
        _replica?.Dispose();
        _opened?.Dispose();
        _listener.Dispose();
        _promotion?.TrySetCanceled();
        await _supervisor.ConfigureAwait(false);
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

    private async Task SuperviseAsync()
    {
        while (!_stop.IsCancellationRequested)
        {
            try
            {
                switch (_role)
                {
                    case NodeRole.Primary:
                        await WatchPrimaryAsync().ConfigureAwait(false);
                        break;
                    case NodeRole.Standby:
                        await RunStandbyAsync().ConfigureAwait(false);
                        break;
                    default:
                        await DecideAsync().ConfigureAwait(false);
                        break;
                }
            }
            catch (OperationCanceledException) when (_stop.IsCancellationRequested)
            {
                return;
            }
            catch (Exception ex)
            {
                Log($"unexpected {ex.GetType().Name} in role {_role}: {ex.Message}");
                await Delay(_options.HeartbeatInterval).ConfigureAwait(false);
            }
        }
    }

    /// <summary>
    /// Starting (or fenced): follow a primary peer; defer to a peer that holds more of the log; else take the lease,
    /// else the configured role. Returns without a role to be called again (the supervisor loops) while it waits.
    /// </summary>
    private async Task DecideAsync()
    {
        var opened = _opened ??= new StandbyReplica(_options, _state, _brokerOptions.VerifySealedSegmentsOnOpen);
        if (_journalsOpenedAt == 0)
        {
            _journalsOpenedAt = Stopwatch.GetTimestamp(); // the waits below count from here, not from a slow open
        }

        var peer = await ProbeAsync(_peer, _options.ProbeTimeout).ConfigureAwait(false);
        if (peer is { Role: NodeRole.Primary } p && p.Epoch >= _state.Epoch)
        {
            SetRole(NodeRole.Standby, $"peer '{p.NodeId}' is primary at epoch {p.Epoch}");
            return;
        }

        // A host that restarted lost its page cache, and with it what this node's journals had not flushed: records
        // the standby may hold durably (standby-durable confirmations). Taking over alone now would cut them from
        // the standby when it returns, so a node that was primary waits a while for its peer (both hosts of a pair
        // that lost power come back at about the same time).
        if (peer is null && _role == NodeRole.Starting && _state.LastRole == NodeRole.Primary && _state.RebootedSinceLastRun
            && Stopwatch.GetElapsedTime(_journalsOpenedAt) < _options.PeerWait)
        {
            if (!_rebootWaitLogged)
            {
                _rebootWaitLogged = true;
                Log($"the host restarted since this node was primary: waiting up to {_options.PeerWait.TotalSeconds:0.#} s for the peer, which may hold records this node's page cache lost");
            }

            await Delay(_options.HeartbeatInterval).ConfigureAwait(false);
            return;
        }

        if (peer is { Role: not NodeRole.Primary } q)
        {
            if (q.Heads is null)
            {
                // The peer is deciding too and has not opened its journals yet: wait for its heads (a while).
                if (_peerHeadsWaitSince == 0)
                {
                    _peerHeadsWaitSince = Stopwatch.GetTimestamp();
                }

                if (Stopwatch.GetElapsedTime(_peerHeadsWaitSince) < _options.PeerWait)
                {
                    await Delay(_options.HeartbeatInterval / 2).ConfigureAwait(false);
                    return;
                }
            }
            else if (CompareLogs(q.Epoch, q.Heads, _state.Epoch, opened.Heads()) > 0)
            {
                _peerHeadsWaitSince = 0;
                // Raft's election rule for a pair: the node with more of the log leads. The peer holds records this
                // node lost (a primary whose host lost power before its page cache was written) or never had: it
                // takes over (asking the witness, or, without one, because this node says it defers), and this node
                // follows it and copies them.
                _defersToPeer = true;
                _deferredAt = Stopwatch.GetTimestamp();
                SetRole(NodeRole.Standby, $"peer '{q.NodeId}' holds more of the log (epoch {q.Epoch}; {DescribeAhead(q.Heads, opened.Heads())}): deferring to it");
                return;
            }
        }

        _peerHeadsWaitSince = 0;

        if (_witness is not null)
        {
            var (promoted, answer) = await TryLeaseAndPromoteAsync("starting").ConfigureAwait(false);
            if (promoted)
            {
                return;
            }

            // Not granted — held by another node (a primary we cannot reach yet), or the witness is unreachable: follow
            // whoever is primary, and retry the lease from the standby loop.
            SetRole(NodeRole.Standby, answer is { Kind: LeaseResultKind.Denied } d
                ? $"the witness lease is held by '{d.Holder}' at epoch {d.Epoch}"
                : $"no witness lease ({answer})");
            return;
        }

        var wantPrimary = _role != NodeRole.Fenced
            && (_state.LastRole == NodeRole.Primary || (_state.LastRole == NodeRole.Starting && _options.InitialRole == NodeRole.Primary))
            && peer is not { Role: NodeRole.Primary };
        if (wantPrimary)
        {
            await BecomePrimaryAsync(Math.Max(1, _state.Epoch), "configured primary, no primary peer").ConfigureAwait(false);
        }
        else
        {
            SetRole(NodeRole.Standby, peer is null ? "peer unreachable; waiting to follow it" : $"peer is {peer.Value.Role}");
        }
    }

    private async Task<(bool Promoted, LeaseResult? Answer)> TryLeaseAndPromoteAsync(string why)
    {
        LeaseResult? answer = null;
        var lease = await LeaseKeeper.TryStartAsync(_witness!, NodeId, _state.Epoch, _options.EffectiveLeaseTtl, onLost: reason => Fence($"witness lease lost: {reason}"), ct: _stop.Token, notGranted: r =>
        {
            answer = r;
            LogBehindDenial(r);
        }).ConfigureAwait(false);
        if (lease is null)
        {
            return (false, answer);
        }

        _lease = lease;
        try
        {
            await BecomePrimaryAsync(lease.Epoch, $"{why}: witness granted the lease at epoch {lease.Epoch}").ConfigureAwait(false);
            return (true, null);
        }
        catch
        {
            _lease = null;
            await lease.ReleaseAsync().ConfigureAwait(false);
            throw;
        }
    }

    private async Task BecomePrimaryAsync(long epoch, string why, bool journalsVerified = false)
    {
        await _transition.WaitAsync(_stop.Token).ConfigureAwait(false);
        try
        {
            if (Interlocked.Exchange(ref _opened, null) is { } opened)
            {
                // Opened (and verified, as configured) while deciding: the broker need not verify them again.
                opened.Dispose();
                opened.CloseJournals();
                journalsVerified = true;
            }

            _defersToPeer = false;

            // A node resumes its epoch after a crash (its journals hold everything it confirmed; the witness, too,
            // renews its own expired lease at the same epoch), but after a reboot its journals may have lost their
            // tail: records the standby still holds at those offsets. A new epoch begins at the heads it has now, so
            // the standby is cut back to them (and says so) when it returns, instead of keeping records that differ
            // from the ones written here at the same offsets. The entry names this node as its leader, so another
            // node's grant of the same number later is a different history (NodeState.DivergenceOffset).
            if (_state.RebootedAtLoad && !_rebootEpochBegun && epoch == _state.Epoch && _state.History.ContainsKey(epoch))
            {
                epoch++;
                why += "; a new epoch after a reboot";
            }

            // A promoted standby does not verify sealed segments again (see the caller).
            // With a witness a confirmation degrades to local only once the witness records the standby behind (so the
            // standby cannot be promoted without it); the lease says whether it already is.
            var gate = new ReplicationGate(_options.AckTimeout, _options.DegradeToLocal, degradeNeedsPermission: _witness is not null);
            if (_lease is { StandbyBehind: true })
            {
                gate.AllowDegrade();
            }

            gate.DegradeWanted = () => OnDegradeWanted(gate);
            var broker = Broker.Open(journalsVerified ? _brokerOptions with { VerifySealedSegmentsOnOpen = false } : _brokerOptions, gate);
            try
            {
                if (epoch > _state.Epoch || !_state.History.ContainsKey(epoch))
                {
                    // Each topic's head now is where this epoch starts: a returning node is cut back to it.
                    _state.BeginEpoch(epoch, broker.Topics.All.Where(t => t.Persistent).ToDictionary(t => t.Name, t => t.Head, StringComparer.Ordinal), NodeId);
                    _rebootEpochBegun = true;
                }
                else
                {
                    _state.SetRole(NodeRole.Primary);
                }

                foreach (var report in broker.RecoveryReports)
                {
                    Log($"recovery: {report}");
                }

                var replicator = new PrimaryReplicator(broker, gate, _state, _options, SawNewerEpoch);
                var server = await BrokerServer.StartAsync(broker, _serverOptions, _stop.Token).ConfigureAwait(false);
                _gate = gate;
                _replicator = replicator;
                Volatile.Write(ref _broker, broker);
                Volatile.Write(ref _server, server);
                _fenceReason = null;
                Interlocked.Exchange(ref _newerEpochSeen, -1);
                SetRole(NodeRole.Primary, $"{why}; serving clients on {server.EndPoint}");

                // The lease may have been lost while the journals opened (a cold open verifies every sealed segment):
                // its Fence found no server to stop then, and the line above cleared its reason. A lost lease stays
                // lost: stop serving now and let the watch loop step down.
                if (_lease is { IsValid: false })
                {
                    Fence("witness lease lost while becoming primary");
                }
            }
            catch
            {
                await broker.DisposeAsync().ConfigureAwait(false);
                throw;
            }
        }
        finally
        {
            _transition.Release();
        }
    }

    /// <summary>As primary: probe the peer each heartbeat; step down on a newer epoch or a lost lease.</summary>
    private async Task WatchPrimaryAsync()
    {
        while (!_stop.IsCancellationRequested && _role == NodeRole.Primary)
        {
            var newer = Interlocked.Read(ref _newerEpochSeen);
            var reason = _fenceReason;
            if (newer < 0 && reason is null && await ProbeAsync(_peer, _options.ProbeTimeout).ConfigureAwait(false) is { Role: NodeRole.Primary } p)
            {
                if (p.Epoch > _state.Epoch)
                {
                    newer = p.Epoch;
                }
                else if (p.Epoch == _state.Epoch && p.NodeId != NodeId && string.CompareOrdinal(NodeId, p.NodeId) > 0)
                {
                    // Two primaries of one epoch: only manual promotions without a witness can do this (each takes
                    // epoch + 1 on its own). One must go, the same one whichever looks first: the greater node id.
                    reason = $"peer '{p.NodeId}' is primary at the same epoch {p.Epoch}: two primaries; the lesser node id keeps it";
                }
            }

            if (newer > _state.Epoch || reason is not null)
            {
                await StepDownAsync(reason ?? $"peer is primary at newer epoch {newer}").ConfigureAwait(false);
                return;
            }

            await CheckStandbyInSyncAsync().ConfigureAwait(false);

            try
            {
                // Woken at once by a lost lease or a newer epoch seen on the replication link.
                await _watchWake.WaitAsync(_options.HeartbeatInterval, _stop.Token).ConfigureAwait(false);
            }
            catch (OperationCanceledException)
            {
            }
        }
    }

    private async Task StepDownAsync(string reason)
    {
        await _transition.WaitAsync().ConfigureAwait(false);
        try
        {
            SetRole(NodeRole.Fenced, reason);
            await StopPrimaryAsync(reason, release: false).ConfigureAwait(false);
        }
        finally
        {
            _transition.Release();
        }
    }

    private async Task StopPrimaryAsync(string reason, bool release)
    {
        var server = Interlocked.Exchange(ref _server, null);
        var broker = Interlocked.Exchange(ref _broker, null);
        if (server is not null)
        {
            await server.StopAsync(TimeSpan.FromSeconds(release ? 5 : 0)).ConfigureAwait(false);
        }

        if (release && broker is not null)
        {
            await HandOverAsync(broker).ConfigureAwait(false);
        }

        _gate?.FailAll(release ? BrokerErrorCode.Closed : BrokerErrorCode.NotPrimary, $"not confirmed: {reason}");
        _replicator?.Dispose();
        _replicator = null;
        if (broker is not null)
        {
            await broker.DisposeAsync().ConfigureAwait(false);
        }

        if (_lease is { } lease)
        {
            _lease = null;
            if (release)
            {
                await lease.ReleaseAsync().ConfigureAwait(false);
            }
            else
            {
                await lease.DisposeAsync().ConfigureAwait(false);
            }
        }
    }

    /// <summary>
    /// A graceful stop, clients closed, before the lease is released: lets an attached standby flush everything this node
    /// wrote and apply the broker's state files as they are now (for up to <see cref="ReplicationOptions.AckTimeout"/>),
    /// so that the node that takes over lacks nothing, local-mode confirmations, commits, acks and producer epochs
    /// included. If the witness records the standby behind and it has now caught up, reports
    /// it in sync first: otherwise the witness would keep the released lease from it (the periodic report runs only
    /// once a heartbeat, and the node stopping has stopped its watch).
    /// </summary>
    private async Task HandOverAsync(Broker broker)
    {
        // A link that is still being set up counts: the gate calls the standby attached only once it is welcomed.
        if (_replicator?.Link is not { } link || _gate is not { } gate)
        {
            return;
        }

        // Degraded count first, as in CheckStandbyInSyncAsync: anything degraded before it lies below the heads read after it.
        var degradedSeen = gate.Degraded;
        var target = Heads(broker);

        // The state outside the journals: committed positions and new producer epochs not yet applied there (in local
        // mode nothing waited for them), and the group state, which is otherwise sent at most every 20 ms (an ack just
        // before the stop could wait for the next heartbeat). The replicator sends every state file that changed, then
        // this version: the standby's STATE_ACK of it says it has written them all.
        var stateVersion = gate.RequestStateFiles();
        var limit = _options.AckTimeout < s_maxHandOverWait ? _options.AckTimeout : s_maxHandOverWait;
        Log($"stopping: waiting up to {limit.TotalMilliseconds:0} ms for standby '{link.StandbyId}' to flush everything this node wrote and apply its state (version {stateVersion})");
        var waited = Stopwatch.StartNew();
        bool flushed;
        while (!(flushed = Holds(link, target)) || gate.StateApplied < stateVersion)
        {
            if (waited.Elapsed >= limit || !ReferenceEquals(_replicator?.Link, link))
            {
                var missing = flushed ? $"apply this node's state (version {stateVersion}, applied {gate.StateApplied})" : "flush everything this node wrote";
                Log($"stopping: standby '{link.StandbyId}' did not {missing} within {limit.TotalMilliseconds:0} ms; releasing the lease without waiting longer");
                return;
            }

            await Task.Delay(TimeSpan.FromMilliseconds(5)).ConfigureAwait(false);
        }

        Log($"stopping: standby '{link.StandbyId}' holds (flushed) everything this node wrote, and its state");
        if (_lease is not { StandbyBehind: true } lease || !gate.TryRevokeDegrade(degradedSeen))
        {
            return;
        }

        using var timeout = new CancellationTokenSource(limit);
        try
        {
            await _standbyReport.WaitAsync(timeout.Token).ConfigureAwait(false);
            try
            {
                if (await lease.SetStandbyBehindAsync(behind: false, timeout.Token).ConfigureAwait(false))
                {
                    Log($"stopping: the witness records standby '{link.StandbyId}' in sync, so it may take over");
                }
                else
                {
                    Log($"stopping: the witness could not be told that standby '{link.StandbyId}' is in sync: it keeps the lease from it until this node returns or 'fastbroker promote --force'");
                }
            }
            finally
            {
                _standbyReport.Release();
            }
        }
        catch (OperationCanceledException)
        {
            Log($"stopping: no answer from the witness within {limit.TotalMilliseconds:0} ms to record standby '{link.StandbyId}' in sync");
        }
    }

    /// <summary>
    /// Dispatcher or replicator thread: a standby-mode confirmation would degrade to local, but the witness does not
    /// record the standby behind yet. Reports it (once at a time, off this thread); held confirmations wait meanwhile.
    /// </summary>
    private void OnDegradeWanted(ReplicationGate gate)
    {
        if (_lease is { } lease && Interlocked.CompareExchange(ref _reportingBehind, 1, 0) == 0)
        {
            _ = Task.Run(() => ReportStandbyBehindAsync(gate, lease));
        }
    }

    private async Task ReportStandbyBehindAsync(ReplicationGate gate, LeaseKeeper lease)
    {
        try
        {
            // A report the witness did not answer (a loaded machine, a witness restarting) is tried again, 100 ms
            // doubling to 1 s, while held confirmations still want it: before, one failed report left them waiting for
            // the ack timeout and failing with NotReplicated although the witness could have recorded the standby behind.
            var retryIn = TimeSpan.FromMilliseconds(100);
            while (true)
            {
                await _standbyReport.WaitAsync(_stop.Token).ConfigureAwait(false);
                try
                {
                    if (gate.DegradeAllowed || gate.StandbyAttached || !ReferenceEquals(_lease, lease))
                    {
                        return; // already reported, the standby is back, or this primary's lease is gone
                    }

                    if (await lease.SetStandbyBehindAsync(behind: true, _stop.Token).ConfigureAwait(false))
                    {
                        _lastBehindFailure = null;
                        Log("no standby attached: the witness records the standby behind (it will not be promoted without what this node now confirms as local); standby-mode publishes degrade to local");
                        gate.AllowDegrade();
                        return;
                    }

                    const string Failure = "no standby attached, and the witness could not record it behind (trying again): standby-mode publishes wait for a standby (failing after the ack timeout) instead of degrading to local";
                    if (_lastBehindFailure is null)
                    {
                        _lastBehindFailure = Failure;
                        Log(Failure);
                    }
                }
                finally
                {
                    _standbyReport.Release();
                }

                await Task.Delay(retryIn, _stop.Token).ConfigureAwait(false);
                retryIn = TimeSpan.FromTicks(Math.Min(retryIn.Ticks * 2, TimeSpan.TicksPerSecond));
            }
        }
        catch (OperationCanceledException)
        {
        }
        finally
        {
            Volatile.Write(ref _reportingBehind, 0);
        }
    }

    /// <summary>
    /// Watch loop, each heartbeat: while the witness records the standby behind and a standby is attached, takes each
    /// topic's head once, and when the standby has flushed up to all of them — with nothing degraded meanwhile —
    /// withdraws the permission to degrade and reports the standby in sync, so it may be promoted again.
    /// </summary>
    private async Task CheckStandbyInSyncAsync()
    {
        if (_lease is not { StandbyBehind: true } lease || _gate is not { } gate || _replicator?.Link is not { } link || !gate.StandbyAttached || Broker is not { } broker)
        {
            _syncTarget = null;
            return;
        }

        if (_syncTarget is null || !ReferenceEquals(_syncLink, link))
        {
            // Degraded count first: anything degraded before it was journaled below the heads read after it.
            _syncDegradedSeen = gate.Degraded;
            _syncLink = link;
            _syncTarget = Heads(broker);
            return;
        }

        if (!Holds(link, _syncTarget))
        {
            return;
        }

        _syncTarget = null;
        if (!gate.TryRevokeDegrade(_syncDegradedSeen))
        {
            return; // the standby left and came back meanwhile, and something degraded: start again
        }

        await _standbyReport.WaitAsync(_stop.Token).ConfigureAwait(false);
        try
        {
            if (await lease.SetStandbyBehindAsync(behind: false, _stop.Token).ConfigureAwait(false))
            {
                Log($"standby '{link.StandbyId}' holds (flushed) everything this node confirmed while it was away: the witness records it in sync");
            }
        }
        finally
        {
            _standbyReport.Release();
        }
    }

    /// <summary>The head of every persistent topic that holds records: what a standby in sync must have flushed.</summary>
    private static Dictionary<string, long> Heads(Broker broker) =>
        broker.Topics.All.Where(t => t.Persistent && t.Head > t.Tail).ToDictionary(t => t.Name, t => t.Head, StringComparer.Ordinal);

    /// <summary>
    /// Whether the standby on <paramref name="link"/> has flushed every topic up to <paramref name="heads"/>. A topic the
    /// link does not stream yet (it announces the existing ones just after the standby attaches) is not held.
    /// </summary>
    private static bool Holds(StandbyLink link, Dictionary<string, long> heads)
    {
        var durable = new Dictionary<string, long>(StringComparer.Ordinal);
        foreach (var (topic, _, _, d) in link.Positions)
        {
            durable[topic] = d;
        }

        foreach (var (topic, head) in heads)
        {
            if (!durable.TryGetValue(topic, out var d) || d < head)
            {
                return false;
            }
        }

        return true;
    }

    private void SawNewerEpoch(long epoch)
    {
        long seen;
        while ((seen = Interlocked.Read(ref _newerEpochSeen)) < epoch && Interlocked.CompareExchange(ref _newerEpochSeen, epoch, seen) != seen)
        {
        }

        _watchWake.Release();
    }

    private void Fence(string reason)
    {
        _fenceReason ??= reason;

        // Stop confirming at once (the witness may hand the lease to the standby soon after this): close every client
        // connection without draining. Clients resend what was not confirmed to the new primary, where the idempotent
        // producer deduplicates whatever had in fact been replicated.
        _ = Volatile.Read(ref _server)?.StopAsync(TimeSpan.Zero);
        _watchWake.Release();
    }

    /// <summary>As standby: follow the primary; on silence take the lease (witness) or wait for a manual promotion.</summary>
    private async Task RunStandbyAsync()
    {
        var replica = Interlocked.Exchange(ref _opened, null) ?? new StandbyReplica(_options, _state, _brokerOptions.VerifySealedSegmentsOnOpen);
        _replica = replica;
        long promoteTo = -1;
        string? lastFailure = null;
        try
        {
            while (!_stop.IsCancellationRequested)
            {
                // Taken up (from here on a cancellation no longer withdraws it), unless its caller withdrew it first.
                if (Volatile.Read(ref _promotion) is { } promotion && promotion.TryTakeUp())
                {
                    promoteTo = await ManualPromotionEpochAsync().ConfigureAwait(false);
                    if (promoteTo > 0)
                    {
                        break;
                    }

                    // Refused (the witness kept the lease): PromoteAsync disposed this replica to stop following, so
                    // it can never connect again. Leave; the supervisor starts a fresh one (still standby).
                    return;
                }

                if (replica.Stopping)
                {
                    // A promotion withdrawn before it was taken up stopped this replica too: the same.
                    return;
                }

                var welcomes = replica.Welcomes;
                var (why, refused) = await Task.Factory.StartNew(
                    () => (replica.Run(_peer, out var r), r), CancellationToken.None, TaskCreationOptions.LongRunning, TaskScheduler.Default).ConfigureAwait(false);
                if (_stop.IsCancellationRequested)
                {
                    return;
                }

                if (_promotion is not null || replica.Stopping)
                {
                    continue;
                }

                Interlocked.Increment(ref _linkAttempts);
                var unreachable = why.StartsWith("cannot connect", StringComparison.Ordinal);
                if (refused > _state.Epoch)
                {
                    Log($"standby: {why}");
                }
                else if (replica.Welcomes != welcomes || why != lastFailure)
                {
                    // A dead peer, or one that is not primary (it refuses the hello), is retried every 50 ms: one line
                    // per reason, not one per attempt, so that the event list (the last 50 lines in /status) keeps the
                    // role changes, deferrals and truncations that matter. A link that was followed is always reported.
                    Log($"standby: link down: {why}");
                }

                lastFailure = replica.Welcomes != welcomes ? null : why;
                if (replica.Welcomes != welcomes)
                {
                    // It followed a primary: a peer seen ahead before that has taken over (or this node caught up). A
                    // later silence of that primary must not count as the old deferral still running.
                    _peerAheadSince = 0;
                    _peerAheadLogged = false;
                }

                if (replica.Welcomes > 0 || (_defersToPeer && Stopwatch.GetElapsedTime(_deferredAt) >= _options.PeerWait))
                {
                    // It followed a primary (whatever it deferred for is settled), or the peer it deferred to has not
                    // taken over in time: it may be promoted again (by the witness or the operator).
                    _defersToPeer = false;
                }

                if (_witness is null && !unreachable && refused <= _state.Epoch
                    && await ProbeAsync(_peer, _options.ProbeTimeout).ConfigureAwait(false) is { Role: not NodeRole.Primary, DefersToPeer: true, Heads: { } peerHeads } deferring
                    && CompareLogs(_state.Epoch, replica.Heads(), deferring.Epoch, peerHeads) > 0)
                {
                    // No witness, but no partition either: the peer answers, is not primary, and defers to this node,
                    // which holds more of the log (see DecideAsync). It cannot take over meanwhile: it waits for this
                    // node, so promoting here cannot make two primaries.
                    Log($"peer '{deferring.NodeId}' defers to this node, which holds more of the log ({DescribeAhead(replica.Heads(), peerHeads)})");
                    promoteTo = _state.Epoch + 1;
                    break;
                }

                if (_witness is not null && replica.SinceLastHeard >= _options.HeartbeatTimeout
                    && await TakeLeaseAsync(_witness, replica).ConfigureAwait(false) is { } lease)
                {
                    _lease = lease;
                    promoteTo = lease.Epoch;
                    break;
                }

                await StandbyDelay(_options.HeartbeatInterval / 2).ConfigureAwait(false);
            }
        }
        finally
        {
            _replica = null; // first: a probe answered meanwhile must not report a closed copy's (empty) heads
            replica.Dispose();
            replica.CloseJournals();
        }

        if (promoteTo > 0)
        {
            // An automatic promotion fulfils a manual request made meanwhile: from here it can no longer be withdrawn.
            Volatile.Read(ref _promotion)?.TryTakeUp();
            try
            {
                // The replica opened (and so verified) every journal in the data directory and was their only writer
                // since: promotion re-opens them without re-reading every sealed segment, in time independent of their size.
                var why = _promotion is not null ? "promoted by the operator"
                    : _witness is null ? "the peer defers to this node, promoted automatically"
                    : "primary silent, promoted automatically";
                await BecomePrimaryAsync(promoteTo, why, journalsVerified: true).ConfigureAwait(false);
                Interlocked.Exchange(ref _promotion, null)?.TrySetResult(promoteTo);
            }
            catch (Exception ex)
            {
                Interlocked.Exchange(ref _promotion, null)?.TrySetException(ex);
                if (_lease is { } lease)
                {
                    _lease = null;
                    await lease.ReleaseAsync().ConfigureAwait(false);
                }

                throw;
            }
        }
    }

    /// <summary>
    /// True while a peer that answers, is not primary, and holds more of the log is given the chance to take over (it
    /// asks the witness itself): at most <see cref="ReplicationOptions.PeerWait"/> from when it was first seen so. A
    /// peer that cannot take over (it cannot reach the witness, or it fenced itself with records never confirmed in a
    /// standby mode) must not keep the pair without a primary for good.
    /// </summary>
    private bool AwaitingPeerAhead(PeerStatus? peer, StandbyReplica replica)
    {
        bool ahead;
        if (peer is null)
        {
            // No answer (dead, or too slow to answer a probe): a peer last seen ahead may still hold confirmed records
            // this node lacks, so it stays the one ahead until PeerWait has passed since then. Before, one probe that
            // timed out on a loaded machine, or a peer that died while it was taking over, ended the deferral at once.
            ahead = _peerAheadSince != 0 || _defersToPeer;
        }
        else if (peer is not { Role: not NodeRole.Primary } p)
        {
            ahead = false;
        }
        else if (p.Heads is { } heads)
        {
            ahead = CompareLogs(p.Epoch, heads, _state.Epoch, replica.Heads()) > 0;
        }
        else
        {
            // It answers without heads: it has no journals open just now, because it is taking over as it was expected
            // to (BecomePrimaryAsync closes its copy, then opens the broker), or stepping down from that. It is still
            // the one ahead if it was last seen so. Taking the lease now would win as soon as its lease ran out during
            // a slow open (a loaded machine, a cold open), and cut its records — confirmed ones — when it followed.
            ahead = _peerAheadSince != 0 || _defersToPeer;
        }

        if (!ahead)
        {
            _peerAheadSince = 0;
            _peerAheadLogged = false;
            return false;
        }

        if (_peerAheadSince == 0)
        {
            _peerAheadSince = _defersToPeer ? _deferredAt : Stopwatch.GetTimestamp();
        }

        if (Stopwatch.GetElapsedTime(_peerAheadSince) < _options.PeerWait)
        {
            return true;
        }

        // Not reset here: if this lease attempt fails, the next one does not wait the whole time again.
        if (!_peerAheadLogged)
        {
            _peerAheadLogged = true;
            Log($"peer '{peer?.NodeId}' holds more of the log but has not taken over in {_options.PeerWait.TotalSeconds:0.#} s: asking for the lease");
        }

        return false;
    }

    /// <summary>Once per holder and epoch: the witness keeps the lease from this node because the holder reported it behind.</summary>
    /// <summary>
    /// The primary is silent: ask the witness for the lease, unless the peer answers as primary or a peer that holds
    /// more of the log is awaited (null then, as when the witness denies it or cannot be reached).
    /// </summary>
    /// <remarks>
    /// The first request usually comes before the silent primary's lease has run out, and the denial says how long it
    /// has left. While the peer stays silent (probed every heartbeat interval) the lease is asked for again as soon as
    /// that has passed. Before, the standby first tried its link again, and a frozen primary's kernel accepts the
    /// connection, so the handshake waited out twice the heartbeat timeout, then a probe its 500 ms: a frozen primary was
    /// replaced after 2.7 s instead of 1.1 s about every other time. A second denial means the holder renewed meanwhile
    /// (it is alive): back to the link.
    /// </remarks>
    private async Task<LeaseKeeper?> TakeLeaseAsync(WitnessClient witness, StandbyReplica replica)
    {
        if (!await PeerMayBeGoneAsync(replica).ConfigureAwait(false))
        {
            return null;
        }

        for (var attempt = 0; ; attempt++)
        {
            LeaseResult? answer = null;
            var lease = await LeaseKeeper.TryStartAsync(witness, NodeId, _state.Epoch, _options.EffectiveLeaseTtl, onLost: reason => Fence($"witness lease lost: {reason}"), ct: _stop.Token, notGranted: a =>
            {
                answer = a;
                LogBehindDenial(a);
            }).ConfigureAwait(false);
            if (lease is not null || attempt > 0 || answer is not { Kind: LeaseResultKind.Denied, StandbyBehind: false } denial
                || denial.Remaining > _options.EffectiveLeaseTtl * 2)
            {
                // Granted; denied again; unreachable; or the holder's standby is behind, or a restarted witness keeps a
                // lease for its longest TTL: waiting for it here would keep this node from its link for too long.
                return lease;
            }

            var retryAt = Stopwatch.GetTimestamp() + (long)(denial.Remaining.TotalSeconds * Stopwatch.Frequency) + (Stopwatch.Frequency / 1000);
            TimeSpan left;
            while ((left = Stopwatch.GetElapsedTime(Stopwatch.GetTimestamp(), retryAt)) > TimeSpan.Zero)
            {
                // A probe of a frozen primary takes its whole timeout: none that would end after the lease is due.
                if (left > _options.TakeoverProbeTimeout + _options.HeartbeatInterval && !await PeerMayBeGoneAsync(replica).ConfigureAwait(false))
                {
                    return null;
                }

                if (_stop.IsCancellationRequested || _promotion is not null)
                {
                    return null;
                }

                left = Stopwatch.GetElapsedTime(Stopwatch.GetTimestamp(), retryAt);
                if (left > TimeSpan.Zero)
                {
                    await StandbyDelay(left < _options.HeartbeatInterval ? left : _options.HeartbeatInterval).ConfigureAwait(false);
                }
            }
        }
    }

    /// <summary>Probes the silent primary briefly: false if it answers as primary, a peer ahead is awaited, or this node is stopping or being promoted by hand.</summary>
    private async Task<bool> PeerMayBeGoneAsync(StandbyReplica replica)
    {
        var peer = await ProbeAsync(_peer, _options.TakeoverProbeTimeout).ConfigureAwait(false);
        return !_stop.IsCancellationRequested && _promotion is null && !AwaitingPeerAhead(peer, replica) && peer is not { Role: NodeRole.Primary };
    }

    private void LogBehindDenial(LeaseResult answer)
    {
        if (answer is { Kind: LeaseResultKind.Denied, StandbyBehind: true } && _behindDenialLogged != (answer.Holder, answer.Epoch))
        {
            _behindDenialLogged = (answer.Holder, answer.Epoch);
            Log($"the witness keeps the lease for '{answer.Holder}' (epoch {answer.Epoch}) although it may be gone: it confirmed publishes as local that this node does not hold (degrade-to-local). Waiting for it to return; 'fastbroker promote --force' takes over without them");
        }
    }

    private async Task<long> ManualPromotionEpochAsync()
    {
        if (_witness is null)
        {
            return _state.Epoch + 1;
        }

        var force = _promotion?.Task.AsyncState is true;
        var lease = await LeaseKeeper.TryStartAsync(_witness, NodeId, _state.Epoch, _options.EffectiveLeaseTtl, onLost: reason => Fence($"witness lease lost: {reason}"), ct: _stop.Token, force: force).ConfigureAwait(false);
        if (lease is null)
        {
            var status = await _witness.StatusAsync(_stop.Token).ConfigureAwait(false);
            var why = status is { Kind: LeaseResultKind.Status, StandbyBehind: true } && !force
                ? $"the witness did not grant the lease ({status}): '{status.Holder}' confirmed publishes as local that this node does not hold; wait for it to return, or force the promotion and lose them"
                : $"the witness did not grant the lease ({status}): the primary is still alive or the witness is unreachable";
            Interlocked.Exchange(ref _promotion, null)?.TrySetException(new InvalidOperationException(why));
            return -1;
        }

        if (force)
        {
            Log("forced promotion: what the old primary confirmed as local while this node was behind is lost");
        }

        _lease = lease;
        return lease.Epoch;
    }

    private void SetRole(NodeRole role, string why)
    {
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
    /// A pause of the standby loop: as <see cref="Delay"/>, and also ended by <see cref="PromoteAsync(bool, CancellationToken)"/>
    /// (at once if one is under way), so that a manual promotion does not wait for the pause (15 s of a 30 s heartbeat
    /// interval) before the loop looks at it.
    /// </summary>
    private async Task StandbyDelay(TimeSpan delay)
    {
        // Wake-ups of promotions the loop has already handled (a refused one): at most one each.
        while (_standbyWake.Wait(0))
        {
        }

        // After the drain: a promotion set (or withdrawn) after this read releases the semaphore after it, and ends the
        // wait below. A withdrawn one left the replica stopped: the loop replaces it at once.
        if (Volatile.Read(ref _promotion) is not null || Volatile.Read(ref _replica) is { Stopping: true })
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

    private async Task<PeerStatus?> ProbeAsync(IPEndPoint peer, TimeSpan wait)
    {
        try
        {
            using var socket = new Socket(SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
            using var timeout = CancellationTokenSource.CreateLinkedTokenSource(_stop.Token);
            timeout.CancelAfter(wait);
            await socket.ConnectAsync(peer, timeout.Token).ConfigureAwait(false);
            var f = new FrameBuffer(128);
            f.Begin(FrameKind.Probe).Str(NodeId).I64(_state.Epoch).End();
            await socket.SendAsync(f.Written.ToArray(), SocketFlags.None, timeout.Token).ConfigureAwait(false);
            var buffer = new byte[4096];
            var length = 0;
            while (true)
            {
                if (length == buffer.Length)
                {
                    Array.Resize(ref buffer, buffer.Length * 2);
                }

                var n = await socket.ReceiveAsync(buffer.AsMemory(length), SocketFlags.None, timeout.Token).ConfigureAwait(false);
                if (n == 0)
                {
                    return null;
                }

                length += n;
                if (length >= 5 && length >= 4 + (long)System.Buffers.Binary.BinaryPrimitives.ReadUInt32LittleEndian(buffer))
                {
                    break;
                }

                if (length >= 4 && System.Buffers.Binary.BinaryPrimitives.ReadUInt32LittleEndian(buffer) > 16 << 20)
                {
                    return null;
                }
            }

            if ((FrameKind)buffer[4] != FrameKind.Status)
            {
                return null;
            }

            var r = new FrameReader(buffer.AsSpan(5, length - 5));
            var role = (NodeRole)r.U8();
            var epoch = r.I64();
            var id = r.Str();
            var flags = r.U8();
            var count = (int)r.U32();
            Dictionary<string, long>? heads = null;
            if ((flags & StatusHeadsKnown) != 0)
            {
                heads = new Dictionary<string, long>(Math.Min(count, 4096), StringComparer.Ordinal);
                for (var i = 0; i < count; i++)
                {
                    heads[r.Str()] = r.I64();
                }
            }

            return new PeerStatus(role, epoch, id, (flags & StatusDefers) != 0, heads);
        }
        catch (Exception ex) when (ex is SocketException or OperationCanceledException or InvalidDataException or ObjectDisposedException)
        {
            return null;
        }
    }

    private async Task AcceptLoopAsync()
    {
        while (await SocketAccept.NextAsync(_listener, _stop.Token, line => Log($"replication listener: {line}")).ConfigureAwait(false) is { } socket)
        {
            _ = Task.Factory.StartNew(() => Serve(socket), CancellationToken.None, TaskCreationOptions.LongRunning, TaskScheduler.Default);
        }
    }

    /// <summary>One inbound replication connection: a probe (answered, closed) or a standby's hello.</summary>
    private void Serve(Socket socket)
    {
        var handedOver = false;
        try
        {
            socket.NoDelay = true;
            Wire.KeepAlive(socket); // a standby whose host dies silently drops off in seconds, not hours
            socket.ReceiveTimeout = 2000;
            var input = new FrameInput(socket, 64 << 10);
            if (!input.Read(out var kind, out var body))
            {
                return;
            }

            socket.ReceiveTimeout = 0;
            var f = new FrameBuffer(4096);
            switch (kind)
            {
                case FrameKind.Probe:
                    var r = new FrameReader(body);
                    r.Str();
                    var theirEpoch = r.I64();
                    if (theirEpoch > _state.Epoch && _role == NodeRole.Primary)
                    {
                        SawNewerEpoch(theirEpoch);
                    }

                    WriteStatusFrame(f);
                    f.SendTo(socket);
                    break;
                case FrameKind.Hello:
                    var hello = Hello.Parse(body);
                    if (_role == NodeRole.Primary && _replicator is { } replicator)
                    {
                        handedOver = true;
                        replicator.Attach(socket, hello);
                    }
                    else
                    {
                        f.Begin(FrameKind.Refuse).I64(_state.Epoch).U8((byte)_role).Str($"node '{NodeId}' is {_role}, not primary").End();
                        f.SendTo(socket);
                    }

                    break;
            }
        }
        catch (Exception ex) when (ex is SocketException or InvalidDataException or ObjectDisposedException)
        {
        }
        finally
        {
            if (!handedOver)
            {
                socket.Dispose();
            }
        }
    }

    private (int, string, byte[])? Route(string method, string path, string query)
    {
        switch (method, path)
        {
            case ("GET", "/status"):
                return (200, "application/json", System.Text.Encoding.UTF8.GetBytes(GetStatusJson()));
            case ("POST", "/promote" or "/promote/force"):
                return PromoteRoute(force: path == "/promote/force");

            case ("GET", "/health") when _role != NodeRole.Primary:
                return (200, "application/json", RoleHealth(_role));

            // A load balancer's checks (Patroni's /primary and /replica): the HTTP code says whether this node is the
            // one to send clients to, or a standby following one. A serving primary falls through to the server's
            // /primary (200, the /health document) and /standby (503, the same).
            case ("GET", "/primary") when !ServesAsPrimary():
                return (503, "application/json", RoleHealth(_role == NodeRole.Primary ? NodeRole.Fenced : _role));
            case ("GET", "/standby") when _role != NodeRole.Primary:
                _ = StandbyCheckQuery.TryParse(query, out var maxLag, out _); // the admin server answered a malformed one with 400
                return StandbyCheck(maxLag);
            default:
                return null;
        }
    }

    /// <summary>
    /// POST /promote: 200 once promoted; 409 when refused, or when the standby did not take the request up within
    /// <see cref="ReplicationOptions.PromoteAnswerTimeout"/> (it is withdrawn then: no promotion follows); 202 with
    /// <c>"inProgress":true</c> when the standby took it up but has not finished by then (it goes ahead; <c>/status</c>
    /// shows the outcome). Never 409 for a promotion that happens later.
    /// </summary>
    private (int, string, byte[]) PromoteRoute(bool force)
    {
        var wait = _options.PromoteAnswerTimeout;
        Promotion request;
        try
        {
            request = RequestPromotion(force, _stop.Token);
        }
        catch (Exception ex) when (ex is InvalidOperationException or OperationCanceledException)
        {
            return PromoteAnswer(409, false, ex.Message);
        }

        var promoting = request.Task;
        try
        {
            promoting.Wait(wait);
        }
        catch (AggregateException)
        {
        }

        if (!promoting.IsCompleted)
        {
            // Withdrawn (its task cancelled before this returns), unless the standby has taken it up.
            Withdraw(request, CancellationToken.None);
        }

        if (promoting.IsCompletedSuccessfully)
        {
            return (200, "application/json", System.Text.Encoding.UTF8.GetBytes($"{{\"promoted\":true,\"epoch\":{promoting.Result}}}\n"));
        }

        if (promoting.IsCanceled)
        {
            return PromoteAnswer(409, false, _stop.IsCancellationRequested
                ? "the node is stopping: not promoted"
                : $"the standby did not take the promotion up within {wait.TotalSeconds:0.###} s (busy probing its peer or asking the witness): withdrawn, still standby; ask again");
        }

        if (promoting.IsFaulted)
        {
            var ex = promoting.Exception!.InnerException!;
            return PromoteAnswer(409, false, ex.Message);
        }

        return PromoteAnswer(202, true, $"the promotion is under way but not finished after {wait.TotalSeconds:0.###} s; it goes ahead: /status shows the role");
    }

    private static (int, string, byte[]) PromoteAnswer(int code, bool inProgress, string message) =>
        (code, "application/json", System.Text.Encoding.UTF8.GetBytes("{\"promoted\":false," + (inProgress ? "\"inProgress\":true," : "") + "\"error\":\"" + JsonEncodedText.Encode(message) + "\"}\n"));

    /// <summary>
    /// GET /standby on a node that is not primary: 200 only on a standby that follows a primary now, has heard from it
    /// within <see cref="ReplicationOptions.StandbyCheckSilence"/> and, with <paramref name="maxLag"/>, lacks at most
    /// that many records of the heads in its last heartbeat; 503 otherwise, the reason in the body.
    /// </summary>
    private (int, string, byte[]) StandbyCheck(long? maxLag)
    {
        var role = _role;
        var replica = Volatile.Read(ref _replica);
        var silence = _options.StandbyCheckSilence;
        TimeSpan? sinceLastHeard = null;
        long? lag = null;
        string? reason;
        if (role != NodeRole.Standby)
        {
            reason = $"this node is {role.ToString().ToLowerInvariant()}, not a standby";
        }
        else if (replica is not { Connected: true })
        {
            reason = "following no primary (not connected to one, or refused)";
        }
        else
        {
            sinceLastHeard = replica.SinceLastHeard;
            lag = replica.LagRecords;
            reason = sinceLastHeard > silence
                ? $"nothing from the primary '{replica.PrimaryId}' for {sinceLastHeard.Value.TotalMilliseconds:F0} ms (more than {silence.TotalMilliseconds:F0} ms, three heartbeat intervals): it may have frozen"
                : maxLag is not { } max ? null
                : lag is not { } behind ? "the primary has not reported its heads yet on this link"
                : behind > max ? $"{behind} records behind the primary '{replica.PrimaryId}' (lag={max})"
                : null;
        }

        var json = new ArrayBufferWriter<byte>(256);
        using (var w = new Utf8JsonWriter(json))
        {
            w.WriteStartObject();
            w.WriteString("status", role.ToString().ToLowerInvariant());
            w.WriteNumber("epoch", _state.Epoch);
            if (sinceLastHeard is { } heard)
            {
                w.WriteNumber("sinceLastHeardMs", (long)heard.TotalMilliseconds);
                if (lag is { } l)
                {
                    w.WriteNumber("lagRecords", l);
                }
                else
                {
                    w.WriteNull("lagRecords");
                }
            }

            if (reason is not null)
            {
                w.WriteString("reason", reason);
            }

            w.WriteEndObject();
        }

        json.Write("\n"u8);
        return (reason is null ? 200 : 503, "application/json", json.WrittenSpan.ToArray());
    }

    // Primary, and not stepping down: no lost lease, no newer epoch seen, no fencing under way (Fence closes the clients).
    private bool ServesAsPrimary() =>
        _role == NodeRole.Primary && _fenceReason is null && Interlocked.Read(ref _newerEpochSeen) < 0 && (_lease is null or { IsValid: true }) && Server is not null;

    private byte[] RoleHealth(NodeRole role) =>
        System.Text.Encoding.UTF8.GetBytes($"{{\"status\":\"{role.ToString().ToLowerInvariant()}\",\"epoch\":{_state.Epoch}}}\n");

    private void WriteStatus(Utf8JsonWriter w)
    {
        w.WriteStartObject();
        w.WriteString("nodeId", NodeId);
        w.WriteString("role", _role.ToString().ToLowerInvariant());
        w.WriteNumber("epoch", _state.Epoch);
        w.WriteNumber("roleForMs", (long)Stopwatch.GetElapsedTime(_roleSince).TotalMilliseconds);
        w.WriteString("replicationEndpoint", ReplicationEndPoint.ToString());
        w.WriteString("peer", _options.Peer);
        if (_options.Witness is { } witness)
        {
            w.WriteString("witness", witness);
            w.WriteBoolean("leaseValid", _lease?.IsValid ?? false);
        }
        else
        {
            w.WriteNull("witness");
        }

        if (Server is { } server)
        {
            w.WriteString("clientEndpoint", server.EndPoint.ToString());
        }

        if (_replicator is { } replicator)
        {
            var link = replicator.Link;
            w.WriteStartObject("standby");
            w.WriteBoolean("attached", link is not null);
            if (link is not null)
            {
                w.WriteString("nodeId", link.StandbyId);
                w.WriteNumber("sinceLastAckMs", (long)link.SinceLastAck.TotalMilliseconds);
                w.WriteNumber("acksReceived", link.AcksReceived);
                w.WriteNumber("bytesSent", link.BytesSent);
                w.WriteNumber("journalerShips", link.JournalerShips);
                w.WriteNumber("journalerAcks", link.JournalerAcks);
                w.WriteNumber("journalerDeferred", link.JournalerDeferred);
                w.WriteStartArray("topics");
                foreach (var (topic, head, received, durable) in link.Positions)
                {
                    w.WriteStartObject();
                    w.WriteString("topic", topic);
                    w.WriteNumber("head", head);
                    w.WriteNumber("received", received);
                    w.WriteNumber("durable", durable);
                    w.WriteNumber("lagRecords", Math.Max(0, head - received));
                    w.WriteEndObject();
                }

                w.WriteEndArray();
            }

            w.WriteNumber("maxRetentionHoldBytes", replicator.Options.MaxRetentionHoldBytes);
            w.WriteNumber("retentionPassed", replicator.RetentionPassed);
            if (_gate is { } gate)
            {
                w.WriteNumber("degraded", gate.Degraded);
                w.WriteNumber("notReplicated", gate.TimedOut);
                w.WriteBoolean("degradeAllowed", gate.DegradeAllowed);
            }

            if (_lease is { } lease)
            {
                // True from before the first publish confirmed as local without the standby until it has caught up.
                w.WriteBoolean("witnessRecordsBehind", lease.StandbyBehind);
            }

            w.WriteEndObject();
        }

        if (_replica is { } replica)
        {
            w.WriteStartObject("replica");
            w.WriteBoolean("connected", replica.Connected);
            w.WriteString("primaryId", replica.PrimaryId);
            w.WriteNumber("sinceLastHeardMs", (long)replica.SinceLastHeard.TotalMilliseconds);
            if (replica.LagRecords is { } lagRecords)
            {
                w.WriteNumber("lagRecords", lagRecords);
            }
            else
            {
                w.WriteNull("lagRecords");
            }

            w.WriteNumber("recordsReceived", replica.RecordsReceived);
            w.WriteNumber("bytesReceived", replica.BytesReceived);
            w.WriteStartArray("topics");
            var heads = replica.PrimaryHeads.ToDictionary(h => h.Topic, StringComparer.Ordinal);
            foreach (var (topic, first, next, durable) in replica.Positions)
            {
                w.WriteStartObject();
                w.WriteString("topic", topic);
                w.WriteNumber("first", first);
                w.WriteNumber("next", next);
                w.WriteNumber("durable", durable);
                if (heads.TryGetValue(topic, out var head) && head.PrimaryHead is { } primaryHead)
                {
                    w.WriteNumber("primaryHead", primaryHead);
                    w.WriteNumber("lagRecords", head.Lag);
                }

                w.WriteEndObject();
            }

            w.WriteEndArray();
            w.WriteStartArray("truncations");
            foreach (var t in replica.Truncations)
            {
                w.WriteStringValue(t);
            }

            w.WriteEndArray();
            w.WriteEndObject();
        }

        w.WriteStartArray("events");
        lock (_events)
        {
            foreach (var e in _events)
            {
                w.WriteStringValue(e);
            }
        }

        w.WriteEndArray();
        w.WriteEndObject();
    }

    /// <summary>
    /// STATUS: role, epoch, node id, flags (<see cref="StatusHeadsKnown"/>, <see cref="StatusDefers"/>), then each
    /// topic's head (name, next offset) when known: a node that is not primary reports the heads of the journals it
    /// has open, so that two nodes deciding at once agree on which of them holds more of the log.
    /// </summary>
    private void WriteStatusFrame(FrameBuffer f)
    {
        var role = _role;
        var copy = role == NodeRole.Primary ? null : Volatile.Read(ref _replica) ?? Volatile.Read(ref _opened);
        var heads = copy?.Heads();
        var flags = (byte)((heads is null ? 0 : StatusHeadsKnown) | (_defersToPeer && copy?.PrimaryId is null ? StatusDefers : 0));
        f.Begin(FrameKind.Status).U8((byte)role).I64(_state.Epoch).Str(NodeId).U8(flags).U32((uint)(heads?.Count ?? 0));
        foreach (var (topic, next) in heads ?? [])
        {
            f.Str(topic).I64(next);
        }

        f.End();
    }

    /// <summary>
    /// Which of two logs holds more: the later epoch (its history goes further), else, in the same epoch, the one that
    /// is ahead on some topic and behind on none (a topic it lacks counts as empty). 1 = the first, -1 = the second,
    /// 0 = equal, or each ahead on a different topic (then neither defers; the usual rules decide).
    /// </summary>
    internal static int CompareLogs(long epochA, IReadOnlyDictionary<string, long> a, long epochB, IReadOnlyDictionary<string, long> b)
    {
        if (epochA != epochB)
        {
            return epochA > epochB ? 1 : -1;
        }

        bool aAhead = false, bAhead = false;
        foreach (var topic in a.Keys.Union(b.Keys))
        {
            var na = a.GetValueOrDefault(topic);
            var nb = b.GetValueOrDefault(topic);
            aAhead |= na > nb;
            bAhead |= nb > na;
        }

        return aAhead == bAhead ? 0 : aAhead ? 1 : -1;
    }

    private static string DescribeAhead(IReadOnlyDictionary<string, long> more, IReadOnlyDictionary<string, long> less) =>
        string.Join(", ", more.Where(p => p.Value > less.GetValueOrDefault(p.Key)).Take(5).Select(p => $"'{p.Key}' to {p.Value} against {less.GetValueOrDefault(p.Key)}"));

    private readonly record struct PeerStatus(NodeRole Role, long Epoch, string NodeId, bool DefersToPeer, Dictionary<string, long>? Heads);
}
