using System.Diagnostics;
using FastBroker.Engine;
using FastBroker.Replication.Internal;
using FastBroker.Server;

namespace FastBroker.Replication;

// The primary role: becoming primary, watching the lease and the standby, stepping down and handing over.
public sealed partial class ReplicatedNode
{
    private async Task BecomePrimaryAsync(long epoch, string why, bool journalsVerified = false)
    {
        Interlocked.Exchange(ref _becomingPrimary, epoch); // GET /primary: promoting
        try
        {
            await BecomePrimaryCoreAsync(epoch, why, journalsVerified).ConfigureAwait(false);
        }
        finally
        {
            Interlocked.Exchange(ref _becomingPrimary, 0);
        }
    }

    private async Task BecomePrimaryCoreAsync(long epoch, string why, bool journalsVerified)
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
            // from the ones written here at the same offsets. With a witness that epoch comes from the witness (the
            // lease was asked at it, LeaseEpoch), so it never grants the number to the peer later; without one, or
            // from a witness that renewed at its own epoch all the same (one older than this node), it is taken here.
            if (RebootEpochDue(epoch))
            {
                epoch++;
                why += "; a new epoch after a reboot";
                if (_lease is not null)
                {
                    Log($"the witness renewed the lease at epoch {epoch - 1} instead of epoch {epoch}, which this node begins after its host restarted (a witness older than this node?): it may grant epoch {epoch} to the peer later, and the pair then waits for an operator; upgrade the witness");
                }
            }

            // A promoted standby does not verify sealed segments again (see the caller).
            // With a witness a confirmation degrades to local only once the witness records the standby behind (so the
            // standby cannot be promoted without it); the lease says whether it already is.
            var gate = new ReplicationGate(_options.AckTimeout, _options.DegradeToLocal, degradeNeedsPermission: _witness is not null, _options.ConsumerVisibility);
            if (_lease is { StandbyBehind: true })
            {
                gate.AllowDegrade();
            }

            gate.DegradeWanted = () => OnDegradeWanted(gate);

            // Checked before each batch's confirmations and again wherever one is released after a wait (a group commit,
            // the standby's ACK, degrading to local, the standby's STATE_ACK): the lease keeper fences the node from a
            // timer, which a node frozen past its lease runs only after the publishes waiting in its sockets (or the
            // fsyncs and ACKs it waited for) were already confirmed.
            var lease = _lease;
            var ownEpoch = epoch;
            gate.Authority = () => (lease is null || lease.IsValid) && Interlocked.Read(ref _newerEpochSeen) <= ownEpoch;
            gate.Deposed = () => ThreadPool.UnsafeQueueUserWorkItem(_ => Fence(lease is { IsValid: false } ? "witness lease ran out (found as it confirmed)" : "a newer primary exists (found as it confirmed)"), null);
            var broker = Broker.Open(journalsVerified ? _brokerOptions with { VerifySealedSegmentsOnOpen = false } : _brokerOptions, gate, directoryLocked: true);
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
                Volatile.Write(ref _newerEpochFrom, null);
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
                    Volatile.Write(ref _newerEpochFrom, p.NodeId);
                }
                else if (p.Epoch == _state.Epoch && p.NodeId != NodeId && string.CompareOrdinal(NodeId, p.NodeId) > 0)
                {
                    // Two primaries of one epoch: only manual promotions without a witness can do this (each takes
                    // epoch + 1 on its own). One must stop serving, the same one whichever looks first: the greater
                    // node id. That decides nothing about whose records are kept: it is not cut back when it follows
                    // (PrimaryReplicator refuses it while it holds records of that epoch of its own); an operator picks.
                    reason = $"peer '{p.NodeId}' is primary at the same epoch {p.Epoch}: two primaries; the lesser node id keeps serving";
                }
            }

            if (newer > _state.Epoch || reason is not null)
            {
                var from = Volatile.Read(ref _newerEpochFrom);
                await StepDownAsync(reason ?? $"peer{(from is null ? "" : $" '{from}'")} is primary at newer epoch {newer}").ConfigureAwait(false);
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
        // before the stop could wait for the next heartbeat). The replicator sends every state file the standby lacks, then
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

    private void SawNewerEpoch(long epoch) => SawNewerEpoch(epoch, null);

    /// <summary>A newer epoch seen (from <paramref name="nodeId"/>, where known: GET /primary names it): step down.</summary>
    private void SawNewerEpoch(long epoch, string? nodeId)
    {
        if (nodeId is not null)
        {
            Volatile.Write(ref _newerEpochFrom, nodeId);
        }

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
}
