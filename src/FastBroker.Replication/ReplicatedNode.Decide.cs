using System.Diagnostics;
using FastBroker.Engine;
using FastBroker.Replication.Internal;

namespace FastBroker.Replication;

// The start-up decision: follow a primary peer, defer to a peer that holds more of the log, or take the lease.
public sealed partial class ReplicatedNode
{
    // The supervisor's unexpected failures logged, each message limited on its own (LogUnexpected).
    private RepeatedLogLines? _failureLog;

    private RepeatedLogLines FailureLog => _failureLog ??= new RepeatedLogLines(LogRateLimit.DefaultInterval, _options.LogClock);

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

                EndQuietFailures();
            }
            catch (OperationCanceledException) when (_stop.IsCancellationRequested)
            {
                return;
            }
            catch (Exception ex)
            {
                LogUnexpected($"unexpected {ex.GetType().Name} in role {_role}: {ex.Message}");
                await PauseAfterFailureAsync().ConfigureAwait(false);
            }
        }
    }

    /// <summary>
    /// Logs an unexpected failure of the supervisor's loop, which retries every heartbeat interval (100 ms): a failure
    /// that repeats (a damaged journal, a refused open, a full disk) is written at once, then, by its message, at most once
    /// per 10 s with the count of those not logged (<see cref="T:FastBroker.Engine.RepeatedLogLines"/>), whatever came between: rounds without
    /// a failure, or failures with other messages, each of which is limited the same way on its own.
    /// </summary>
    private void LogUnexpected(string line) => FailureLog.Write(Log, line);

    /// <summary>
    /// A round of the loop without an unexpected failure: a failure not seen for a whole interval no longer repeats, and
    /// the count of it not logged is, in one line (<c>RepeatedLogLines.EndQuiet</c>); its next occurrence is
    /// written at once.
    /// </summary>
    private void EndQuietFailures() => _failureLog?.EndQuiet(Log);

    /// <summary>
    /// The node stops: the counts held back of the supervisor's failure lines and of the standby's link lines are
    /// written (the latest text of each, ending <c>; no longer repeating)</c>), not lost with the node.
    /// </summary>
    private void EndHeldBackLines()
    {
        _failureLog?.EndAll(Log);
        _linkLog?.EndAll(Log);
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
            else if (CompareLogs(q.Epoch, q.Heads, _state.Epoch, opened.Heads()) is var order && order == LogOrder.Diverged)
            {
                // Each holds records of some topic the other lacks: whichever took over (the lease, or the configured
                // role) would cut the other's when it followed, and they may have been confirmed (standby-durable on
                // one, as local on the other). Neither takes over on its own while the peer answers so: it waits as
                // standby, where it does not ask for the lease either (AwaitingPeerAhead), until an operator promotes one.
                _peerHeadsWaitSince = 0;
                _peerDivergedSince = Stopwatch.GetTimestamp();
                LogDiverged(q, q.Heads, opened.Heads());
                SetRole(NodeRole.Standby, DivergedWhy(q.NodeId));
                return;
            }
            else if (order == LogOrder.FirstAhead)
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
            // whoever is primary, and retry the lease from the standby loop. An answer outside the protocol is on the
            // line the witness client logged just before: not repeated here. A refusal (ERROR) is this line, and paces
            // the standby's next ask as one of its own does (OnLeaseRefused): at the largest epoch, one lease TTL on.
            SetRole(NodeRole.Standby, answer is { Kind: LeaseResultKind.Denied } d
                ? $"the witness lease is held by '{d.Holder}' at epoch {d.Epoch}"
                : answer is { Kind: LeaseResultKind.Error } e && OnLeaseRefused(e) is { } refusal ? refusal
                : $"no witness lease ({answer?.ForLog()})");
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
        var lease = await LeaseKeeper.TryStartAsync(_witness!, NodeId, LeaseEpoch, _options.EffectiveLeaseTtl, onLost: reason => Fence($"witness lease lost: {reason}"), ct: _stop.Token, notGranted: r =>
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

    /// <summary>
    /// The epoch this node asks the witness for the lease at: its own, or, while it would begin a new epoch on becoming
    /// primary (<see cref="RebootEpochDue"/>), that one. The witness renews its holder's lease at a later epoch asked
    /// (and records it), and grants a new holder one past it: either way the lease comes at an epoch past any it may
    /// later grant the peer, not at the old one with the new epoch taken here on its own.
    /// </summary>
    private long LeaseEpoch => RebootEpochDue(_state.Epoch) ? _state.Epoch + 1 : _state.Epoch;

    /// <summary>
    /// Whether becoming primary at <paramref name="epoch"/> begins a new epoch instead: this node's host restarted since
    /// it last ran (its journals may have lost their tail), <paramref name="epoch"/> is the one it already holds history
    /// of, and it has not begun one since it started.
    /// </summary>
    private bool RebootEpochDue(long epoch) =>
        _state.RebootedAtLoad && !_rebootEpochBegun && epoch == _state.Epoch && _state.History.ContainsKey(epoch);

    private async Task<long> ManualPromotionEpochAsync()
    {
        if (_witness is null)
        {
            if (NodeState.NoEpochAfter(_state.Epoch) is { } none)
            {
                Interlocked.Exchange(ref _promotion, null)?.TrySetException(new InvalidOperationException($"node '{NodeId}' cannot be promoted: {none}"));
                return -1;
            }

            return _state.Epoch + 1;
        }

        var force = _promotion?.Task.AsyncState is true;
        _options.PromotionEpochStep?.Invoke();
        LeaseResult? answer = null;
        var lease = await LeaseKeeper.TryStartAsync(_witness, NodeId, LeaseEpoch, _options.EffectiveLeaseTtl, onLost: reason => Fence($"witness lease lost: {reason}"), ct: _stop.Token, notGranted: a => answer = a, force: force).ConfigureAwait(false);
        if (lease is null)
        {
            var status = await _witness.StatusAsync(_stop.Token).ConfigureAwait(false);
            var why = answer is { Kind: LeaseResultKind.Error } error
                ? $"the witness did not grant the lease ({error})"
                : status is { Kind: LeaseResultKind.Status, StandbyBehind: true } && !force
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
}
