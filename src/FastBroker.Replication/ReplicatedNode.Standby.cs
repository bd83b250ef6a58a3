using System.Diagnostics;
using FastBroker.Engine;
using FastBroker.Replication.Internal;

namespace FastBroker.Replication;

// The standby role: following the primary, and taking over when it is gone.
public sealed partial class ReplicatedNode
{
    // The standby's link-down and refusal lines, each reason limited on its own (RunStandbyAsync).
    private RepeatedLogLines? _linkLog;

    private RepeatedLogLines LinkLog => _linkLog ??= new RepeatedLogLines(LogRateLimit.DefaultInterval, _options.LogClock);

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
                    try
                    {
                        promoteTo = await ManualPromotionEpochAsync().ConfigureAwait(false);
                    }
                    catch (Exception ex) when (!_stop.IsCancellationRequested)
                    {
                        // Taken up, so nobody else completes it: its caller (POST /promote) gets the failure, and the
                        // node stays standby (a fresh replica, as after a refusal), to be promoted again.
                        var failure = $"the promotion failed ({ex.GetType().Name}: {ex.Message}): still standby, ask again";
                        Log($"standby: {failure}");
                        Interlocked.Exchange(ref _promotion, null)?.TrySetException(new InvalidOperationException(failure, ex));
                        return;
                    }

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
                _options.LinkEnded?.Invoke(why);
                var unreachable = why.StartsWith("cannot connect", StringComparison.Ordinal);
                if (refused > _state.Epoch || replica.Welcomes != welcomes || why != lastFailure)
                {
                    // A dead peer, or one that is not primary (it refuses the hello), is retried every 50 ms: a reason
                    // the last attempt ended with too, the link not followed since, is not logged again, so that the
                    // event list (the last 50 lines in /status) keeps the role changes, deferrals and truncations that
                    // matter. Every other reason goes through LinkLog: a peer that refuses at a newer epoch, a primary
                    // that welcomes this node and ends the link each round, or reasons that alternate, repeat a reason
                    // with others between, logged by its text at most once per 10 s with the count not logged.
                    LinkLog.Write(Log, refused > _state.Epoch ? $"standby: {why}" : $"standby: link down: {why}");
                }

                lastFailure = replica.Welcomes != welcomes ? null : why;
                if (replica.Welcomes != welcomes)
                {
                    // It followed a primary: a peer seen ahead before that has taken over (or this node caught up). A
                    // later silence of that primary must not count as the old deferral still running.
                    _peerAheadSince = 0;
                    _peerAheadLogged = false;
                    _peerDivergedSince = 0;
                }

                if (replica.Welcomes > 0 || (_defersToPeer && Stopwatch.GetElapsedTime(_deferredAt) >= _options.PeerWait))
                {
                    // It followed a primary (whatever it deferred for is settled), or the peer it deferred to has not
                    // taken over in time: it may be promoted again (by the witness or the operator).
                    _defersToPeer = false;
                }

                if (_witness is null && !unreachable && refused <= _state.Epoch
                    && await ProbeAsync(_peer, _options.ProbeTimeout).ConfigureAwait(false) is { Role: not NodeRole.Primary, Heads: { } peerHeads } answer)
                {
                    var order = CompareLogs(_state.Epoch, replica.Heads(), answer.Epoch, peerHeads);
                    if (order == LogOrder.Diverged)
                    {
                        // The peer refused the link (it is not primary) and its log and this node's have diverged: seen
                        // here when this node's probe at its start did not reach the peer (a connect timeout on a
                        // loaded machine), so that it became standby without comparing them. It says so now, as the
                        // start would have; it only waits (it promotes itself only for a peer that defers, below).
                        NoteDivergedAsStandby(answer, peerHeads, replica.Heads());
                    }
                    else if (answer.DefersToPeer && order == LogOrder.FirstAhead && CanBeginEpochAfter(_state.Epoch))
                    {
                        // No witness, but no partition either: the peer answers, is not primary, and defers to this
                        // node, which holds more of the log (see DecideAsync). It cannot take over meanwhile: it waits
                        // for this node, so promoting here cannot make two primaries.
                        Log($"peer '{answer.NodeId}' defers to this node, which holds more of the log ({DescribeAhead(replica.Heads(), peerHeads)})");
                        promoteTo = _state.Epoch + 1;
                        break;
                    }
                }

                if (_witness is not null && replica.SinceLastHeard >= _options.HeartbeatTimeout
                    && await TakeLeaseAsync(_witness, replica).ConfigureAwait(false) is { } lease)
                {
                    _lease = lease;
                    promoteTo = lease.Epoch;
                    break;
                }

                EndQuietFailures(); // a round without an unexpected failure: one not seen for an interval no longer repeats
                await StandbyDelay(_options.HeartbeatInterval / 2).ConfigureAwait(false);
            }
        }
        finally
        {
            if (promoteTo > 0)
            {
                Interlocked.Exchange(ref _becomingPrimary, promoteTo); // GET /primary: promoting, not "following no primary"
                _linkLog?.EndAll(Log); // no longer following: the counts of link lines held back are written, not kept
            }

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
    /// standby mode) must not keep the pair without a primary for good. A peer seen with a diverged log (each ahead on a
    /// different topic) is waited for without that bound while it answers so (or without heads), until this node follows
    /// a primary (an operator promotes one of the two) or the peer answers with heads that no longer diverge from this
    /// node's (its data directory was wiped, say): then the usual rules apply.
    /// </summary>
    private bool AwaitingPeerAhead(PeerStatus? peer, StandbyReplica replica)
    {
        bool ahead;
        if (_peerDivergedSince != 0 && peer is not { Role: NodeRole.Primary } && peer is not { Heads: not null })
        {
            // A peer seen diverged that answers without heads (reopening its copy after a refused promotion, or taking
            // over when promoted by hand) or has been silent for less than PeerWait since: still waited for.
            if (peer is not null)
            {
                _peerDivergedSince = Stopwatch.GetTimestamp();
                return true;
            }

            if (Stopwatch.GetElapsedTime(_peerDivergedSince) < _options.PeerWait)
            {
                return true;
            }
        }

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
            var order = CompareLogs(p.Epoch, heads, _state.Epoch, replica.Heads());
            if (order == LogOrder.Diverged)
            {
                // Each holds records the other lacks: taking the lease would cut the peer's when it followed. Not
                // bounded by PeerWait while the peer answers so; an operator promotes the one to keep.
                NoteDivergedAsStandby(p, heads, replica.Heads());
                return true;
            }

            if (_peerDivergedSince != 0)
            {
                // Seen diverged, and not yet followed. A STATUS answer carries heads only from journals the peer has
                // open (between two copies, a promotion refused and its copy reopening, or taking over, it carries
                // none: handled above), so these are what its log holds now. Records are compared by offset alone,
                // whatever the two epochs: if the peer still holds records of some topic beyond this node's while
                // lacking some of another's, it is still diverged (a peer at another epoch too: one that lost its
                // node.state, or began an epoch it has not taken over in), and waited for. If not, it came back with
                // less (its data directory wiped, or restored from an older copy) or with no more than this node on
                // any topic: nothing only one of them holds is cut by the usual rules, which apply from here (this
                // node, ahead, takes the lease; a peer ahead at a later epoch is waited for as any peer ahead).
                var mine = replica.Heads();
                if (CompareLogs(_state.Epoch, heads, _state.Epoch, mine) == LogOrder.Diverged)
                {
                    _peerDivergedSince = Stopwatch.GetTimestamp();
                    return true;
                }

                _peerDivergedSince = 0;
                _divergedLogged = null;
                Log($"peer '{p.NodeId}' answers with a log that no longer diverges from this node's (epoch {p.Epoch}, {heads.Count} topic(s); this node at epoch {_state.Epoch}, {mine.Count}): no operator is needed, the usual rules decide which of them takes over");
            }

            ahead = order == LogOrder.FirstAhead;
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
        if (Stopwatch.GetTimestamp() < _leaseAskAfter || !await PeerMayBeGoneAsync(replica).ConfigureAwait(false))
        {
            return null;
        }

        for (var attempt = 0; ; attempt++)
        {
            LeaseResult? answer = null;
            var lease = await LeaseKeeper.TryStartAsync(witness, NodeId, LeaseEpoch, _options.EffectiveLeaseTtl, onLost: reason => Fence($"witness lease lost: {reason}"), ct: _stop.Token, notGranted: a =>
            {
                answer = a;
                LogBehindDenial(a);
                if (OnLeaseRefused(a) is { } refusal)
                {
                    Log($"standby: {refusal}");
                }
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

    /// <summary>
    /// True when an epoch can follow <paramref name="epoch"/>; otherwise logs why not, once per epoch, and the standby
    /// does not promote itself (a promotion by hand is refused with the same reason).
    /// </summary>
    private bool CanBeginEpochAfter(long epoch)
    {
        if (NodeState.NoEpochAfter(epoch) is not { } none)
        {
            return true;
        }

        if (_noEpochLogged != epoch)
        {
            _noEpochLogged = epoch;
            Log($"standby: not taking over: {none}");
        }

        return false;
    }

    /// <summary>
    /// A witness's ERROR answer to this node's ask for the lease (at its start or as standby): returned to be logged once
    /// per message (it answers each ask the same way; an answer outside the protocol is the witness client's line, not
    /// repeated), null when not to be logged. While no epoch can follow the one this node asks at
    /// (<see cref="NodeState.NoEpochAfter"/>: the witness refuses it a new holder's epoch every time), the standby asks
    /// again only once per lease TTL from this answer, not every half heartbeat, the start's refusal included; it still
    /// asks, since the witness renews the lease of a holder at that epoch.
    /// </summary>
    private string? OnLeaseRefused(LeaseResult answer)
    {
        if (answer.Kind != LeaseResultKind.Error)
        {
            return null;
        }

        var ttl = _options.EffectiveLeaseTtl;
        var exhausted = NodeState.NoEpochAfter(LeaseEpoch) is not null;
        if (exhausted)
        {
            _leaseAskAfter = Stopwatch.GetTimestamp() + (long)(ttl.TotalSeconds * Stopwatch.Frequency);
        }

        // An answer outside the protocol is on the line the witness client logged already: one line per bad answer.
        if (answer.Logged || _leaseRefusalLogged == answer.Message)
        {
            return null;
        }

        _leaseRefusalLogged = answer.Message;
        return $"the witness did not grant the lease: {answer.Message}{(exhausted ? $" (asking it again every {ttl.TotalSeconds:0.###} s, the lease TTL)" : "")}";
    }

    private void LogBehindDenial(LeaseResult answer)
    {
        if (answer is { Kind: LeaseResultKind.Denied, StandbyBehind: true } && _behindDenialLogged != (answer.Holder, answer.Epoch))
        {
            _behindDenialLogged = (answer.Holder, answer.Epoch);
            Log($"the witness keeps the lease for '{answer.Holder}' (epoch {answer.Epoch}) although it may be gone: it confirmed publishes as local that this node does not hold (degrade-to-local). Waiting for it to return; 'fastbroker promote --force' takes over without them");
        }
    }
}
