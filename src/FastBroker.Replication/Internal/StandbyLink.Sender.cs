using System.Diagnostics;
using System.Net.Sockets;
using FastBroker.Engine;
using FastBroker.Journal;
using FastBroker.Net;

namespace FastBroker.Replication.Internal;

/// <summary>The sender thread: the welcome, new topics, shipping records (also from the journaler's thread), heartbeats.</summary>
internal sealed partial class StandbyLink
{
    private void SendLoop()
    {
        var registry = _owner.Broker.Topics;
        Action<TopicState> onCreated = _created.Enqueue;
        try
        {
            var f = new FrameBuffer(1 << 20);
            var existing = registry.SubscribeToCreations(onCreated);
            lock (_passLock)
            {
                SendWelcome(f, existing);
            }

            // Logged before the ack reader starts: it can end the link (and log the end) at once, and an operator reads
            // the attach before its end.
            _owner.LogLink($"replication: standby '{_hello.NodeId}' attached (epoch {_owner.Epoch}, {_topics.Count} topics; {StateFilesSent} state files sent whole, {_digestsReported} copies reported, {StateFilesRemoved} removed)");
            _acker = new Thread(AckLoop) { IsBackground = true, Name = "fastbroker-replicator-acks" };
            _acker.Start();
            _owner.Gate.SetStandbyAttached(true);
            var heartbeatTicks = (long)(_owner.Options.HeartbeatInterval.TotalSeconds * Stopwatch.Frequency);
            var nextHeartbeat = Stopwatch.GetTimestamp() + heartbeatTicks;
            var groupStateTicks = Stopwatch.Frequency / 50;
            var idle = true;
            _owner.Gate.SetReplicatorIdle(true);
            var nextGroupState = 0L;
            while (!_stopping)
            {
                long sent;
                lock (_passLock)
                {
                    sent = Pass(f, ref nextHeartbeat, ref nextGroupState, heartbeatTicks, groupStateTicks, out var more);
                    _owner.ThreadPassed?.Invoke(ReplicationThread.Sender);
                    if (more)
                    {
                        continue; // catching up: the next budget at once
                    }
                }

                if (!_stayedUpTold && StayedUp)
                {
                    _stayedUpTold = true;
                    _owner.OnLinkStayedUp();
                }

                if (sent > 0)
                {
                    // Busy: pause to coalesce the next records (local-mode traffic); a confirmation that waits for
                    // the standby, a commit or a group-state change cuts the pause short.
                    if (idle)
                    {
                        idle = false;
                        _owner.Gate.SetReplicatorIdle(false);
                    }

                    _owner.WakeSignal.Wait(s_coalescePause);
                }
                else if (!idle)
                {
                    // Announce idleness, then look once more: records published before the dispatcher saw the flag
                    // woke nobody.
                    idle = true;
                    _owner.Gate.SetReplicatorIdle(true);
                }
                else
                {
                    // Asleep until woken or the heartbeat; and if a group-state change waits for the end of the 20 ms
                    // spacing, until then: the acks that came within it woke nobody (the change was already flagged).
                    // In whole milliseconds, rounded up: the wait truncates a timeout to milliseconds, so one under 1 ms
                    // returned at once, and the sender spun through the last millisecond before every heartbeat.
                    var wakeAt = _owner.Gate.GroupStatePending ? Math.Min(nextHeartbeat, nextGroupState) : nextHeartbeat;
                    var left = wakeAt - Stopwatch.GetTimestamp();
                    _owner.WakeSignal.Wait(TimeSpan.FromMilliseconds(Math.Max(1, (left * 1000 + Stopwatch.Frequency - 1) / Stopwatch.Frequency)));
                }
            }
        }
        catch (Exception ex) when (ex is SocketException or ObjectDisposedException or IOException or JournalException or InvalidDataException)
        {
            EndLink(ex.Message);
        }
        finally
        {
            registry.RemoveOnCreated(onCreated);
            _stopping = true;
            _socket.Dispose();
        }
    }

    /// <summary>One pass of the sender, under the pass lock: new topics, records, positions, group state, heartbeat.</summary>
    private long Pass(FrameBuffer f, ref long nextHeartbeat, ref long nextGroupState, long heartbeatTicks, long groupStateTicks, out bool more)
    {
        if (_unsent.Length > 0)
        {
            // What the journaler's non-blocking send left over goes first: the stream stays in order.
            Send(_unsent);
        }

        while (_created.TryDequeue(out var created))
        {
            AddTopic(created, created.Tail, created.Tail);
        }

        var sent = 0L;
        more = false;
        foreach (var t in _topics)
        {
            var n = Ship(f, t);
            sent += n;
            more |= n >= TopicBudgetBytes;
        }

        if (f.Length > 0)
        {
            Send(f);
        }

        sent += ShipPositions(f);
        SendWantedStateFiles(f);
        var now = Stopwatch.GetTimestamp();
        if (now >= nextGroupState && _owner.Gate.TakeGroupStateChanged(_changedGroupFiles))
        {
            // Work-queue acks: shipped whole, at most every 20 ms (an ack the standby missed means a redelivery after
            // failover, never a loss). A change within the 20 ms stays flagged, and the idle sender sleeps only until
            // they end (SendLoop), so it reaches the standby within them.
            nextGroupState = now + groupStateTicks;
            SendChangedGroupStates(f);
        }

        if (now >= nextHeartbeat)
        {
            nextHeartbeat = now + heartbeatTicks;
            CheckStateFiles(f);
            foreach (var t in _topics)
            {
                var tail = t.Topic.Tail;
                if (t.Announced && tail != t.RetainedSent)
                {
                    f.Begin(FrameKind.Retained).U32(t.Id).I64(tail).End();
                    t.RetainedSent = tail;
                }
            }

            // Each announced topic's head: the standby's lag (GET /standby?lag=) is what it lacks of these.
            var announced = 0u;
            foreach (var t in _topics)
            {
                announced += t.Announced ? 1u : 0u;
            }

            if (_acksBeforeHeartbeat < 0)
            {
                Volatile.Write(ref _acksBeforeHeartbeat, AcksReceived); // before the send: its answer counts after
            }

            f.Begin(FrameKind.Heartbeat).I64(_owner.Epoch).U32(announced);
            foreach (var t in _topics)
            {
                if (t.Announced)
                {
                    f.U32(t.Id).I64(t.Topic.Head);
                }
            }

            f.End();
            Send(f);
            Interlocked.Increment(ref _heartbeatsSent);
        }

        return sent;
    }

    private void SendWelcome(FrameBuffer f, TopicState[] existing)
    {
        var state = _owner.Broker.Topics;
        var primaryEpoch = _owner.Epoch;
        var history = _owner.NodeHistory();
        var directives = new List<(string Topic, TopicAction Action, long Offset)>();
        var resume = new Dictionary<string, long>(StringComparer.Ordinal);
        var durableOf = new Dictionary<string, long>(StringComparer.Ordinal);
        foreach (var (name, first, next, durable) in _hello.Topics)
        {
            if (!state.TryGet(name, out var topic) || !topic.Persistent)
            {
                directives.Add((name, TopicAction.Delete, 0));
                continue;
            }

            durableOf[name] = durable;

            var keep = Math.Min(next, topic.Head);
            // Also at an equal epoch: without a witness two nodes can each have begun it (different leaders).
            if (_hello.Epoch <= primaryEpoch && _owner.DivergenceOffset(_hello, name) is { } cut)
            {
                keep = Math.Min(keep, cut);
            }

            if (keep < topic.Tail || first > keep)
            {
                directives.Add((name, TopicAction.Reset, topic.Tail));
                resume[name] = topic.Tail;
            }
            else if (keep < next)
            {
                directives.Add((name, TopicAction.Truncate, keep));
                resume[name] = keep;
            }
            else
            {
                resume[name] = next;
            }
        }

        f.Begin(FrameKind.Welcome).I64(primaryEpoch).Str(_owner.Options.NodeId).Str(history).U32((uint)directives.Count);
        foreach (var (topic, action, offset) in directives)
        {
            f.Str(topic).U8((byte)action).I64(offset);
        }

        f.End();
        Send(f);

        // Broker state: every state file whose copy the standby lacks (its STATE_DIGESTS say which it holds), whole
        // (read after the queued position updates are dropped, so it holds them), then the version it covers; later
        // commits follow as updates.
        ReadStateDigests();
        var covered = _owner.Gate.BeginStateSnapshot();
        SendStateFiles(f);
        f.Begin(FrameKind.Positions).I64(covered).U32(0).End();
        Send(f);
        foreach (var t in existing)
        {
            if (t.Persistent)
            {
                var from = resume.TryGetValue(t.Name, out var r) ? r : t.Tail;
                AddTopic(t, from, durableOf.TryGetValue(t.Name, out var d) ? Math.Min(d, from) : from);
            }
        }
    }

    /// <summary>
    /// Starts streaming <paramref name="topic"/> from <paramref name="from"/>; the standby holds everything before it,
    /// flushed up to <paramref name="durable"/> (a restarted standby may hold records it never flushed).
    /// </summary>
    private void AddTopic(TopicState topic, long from, long durable)
    {
        if (!topic.Persistent || _topics.Exists(t => ReferenceEquals(t.Topic, topic)))
        {
            return;
        }

        var acks = _owner.Gate.For(topic);
        _owner.PositionsReset?.Invoke(this, topic);
        acks.ResetPositions(from, durable);
        var lt = new LinkTopic(topic, (uint)_topics.Count, acks, from);
        _topics.Add(lt);
        _byTopic[topic] = lt;
        _byId = [.. _topics];
    }

    /// <summary>
    /// Journaler thread, end of a batch in which a confirmation of <paramref name="topic"/> started waiting for the
    /// standby: ship the new records from here, sparing the sender thread's wake-up on the way to the standby. Never
    /// blocks: the sender thread may hold the link (then false, and the caller wakes it), and the send takes only
    /// what the socket buffer has room for; the rest waits in <see cref="_unsent"/> for the sender thread, which
    /// sends it before anything else. False also when records remain to ship.
    /// </summary>
    public bool TryShipNow(TopicState topic)
    {
        if (_stopping || !OperatingSystem.IsLinux() || !Monitor.TryEnter(_passLock))
        {
            return false;
        }

        try
        {
            if (_stopping || _unsent.Length > 0 || !_byTopic.TryGetValue(topic, out var t) || !t.Announced)
            {
                return false;
            }

            var f = _nowFrame;
            f.Clear();
            var more = Ship(f, t, InlineShipBytes, copy: true) >= InlineShipBytes;
            if (f.Length > 0)
            {
                Interlocked.Increment(ref _journalerShips);
                var n = SocketSendNow.TrySend(_socket, f.Written);
                if (n < f.Length)
                {
                    _unsent.Bytes(f.Written[n..]);
                    Interlocked.Increment(ref _journalerDeferred);
                    more = true;
                }

                f.Clear();
            }

            _owner.ThreadPassed?.Invoke(ReplicationThread.JournalerShip);
            return !more;
        }
        catch (Exception ex) when (ex is ObjectDisposedException or JournalException)
        {
            return false; // the sender thread meets the same trouble and ends the link
        }
        finally
        {
            Monitor.Exit(_passLock);
        }
    }

    /// <summary>
    /// Appends up to about <paramref name="budget"/> bytes of <paramref name="t"/>'s unshipped records to
    /// <paramref name="f"/>, sending when it fills; big runs go straight from the mapping (for as long as the socket takes
    /// them within <see cref="s_mappedSendHold"/>, see <see cref="SendMapped"/>) unless <paramref name="copy"/> (then
    /// nothing is sent here: the caller sends <paramref name="f"/>). Returns the record bytes taken.
    /// </summary>
    private long Ship(FrameBuffer f, LinkTopic t, int budget = TopicBudgetBytes, bool copy = false)
    {
        if (!t.Announced)
        {
            // A pinning reader: the primary's retention does not delete what this link has not shipped (a subscriber's
            // reader would skip to the tail instead, and the standby's copy would have a gap), up to a bound: a standby
            // that stays attached but stops reading (frozen, in local ack mode, with a long heartbeat timeout) must not
            // fill the primary's disk. Past it the reader is passed like a subscriber's, and the run check below ends
            // the link. The standby's silence timeout detaches a standby that stops answering, and with it this floor.
            t.Reader = t.Topic.Journal!.OpenReader(ReadStart.FromOffset(t.From), pinRetention: true);
            t.Reader.MaxRetentionHoldBytes = _owner.Options.MaxRetentionHoldBytes;
            if (t.Reader.NextOffset > t.From)
            {
                // Retention deleted the start between the welcome and now: end the link; the standby's next hello
                // finds its position below the primary's tail and the welcome restarts its copy there.
                throw GapAhead(t, t.Reader.NextOffset);
            }

            f.Begin(FrameKind.Topic).U32(t.Id).Str(t.Topic.Name).Str(TopicRegistry.FormatMeta(t.Topic.Options, t.Topic.Incarnation)).I64(t.From).End();
            t.Announced = true;
        }

        if (t.GapAt is { } gap)
        {
            throw GapAhead(t, gap); // seen on the journaler's thread, which cannot end the link
        }

        if (t.DamagedAt is { } damaged && t.Topic.Tail > damaged)
        {
            // Retention deleted the damaged record (the reader's hold bound passed): what is left can be sent again.
            _owner.DamageGone(t.Topic.Name);
            throw GapAhead(t, t.Topic.Tail);
        }

        var sent = ShipRuns(f, t, budget, copy);

        // The batch's end (as the broker's cursors park after each read): nothing here holds a span of the reader's
        // segment until its next read. A busy sender (a standby always behind) ends every batch on the budget, not on
        // an empty read (which parks by itself), and then sends and waits with the reader positioned mid-segment: were
        // it not parked, a segment retention deleted (the hold bound passed) would stay mapped, its disk blocks taken,
        // until the reader had read it to its end, shipping records the gap after them makes the standby throw away.
        t.Reader!.Park();

        // A standby-durable confirmation waits on this topic: have the standby flush what it has been sent (it
        // otherwise flushes in the background, so local and standby-received traffic costs it no fsync per burst).
        if (t.Acks.DurableHeldCount > 0 && t.ShippedEnd > t.FlushRequested)
        {
            f.Begin(FrameKind.Flush).U32(t.Id).End();
            t.FlushRequested = t.ShippedEnd;
        }

        Interlocked.Add(ref _bytesSent, sent);
        return sent;
    }

    /// <summary>The runs of <see cref="Ship"/>: nothing once the topic's stream stopped at a damaged record.</summary>
    private long ShipRuns(FrameBuffer f, LinkTopic t, int budget, bool copy)
    {
        var sent = 0L;
        var epoch = _owner.Epoch;
        JournalRun run;
        while (t.DamagedAt is null && sent < budget)
        {
            try
            {
                if (!t.Reader!.TryReadRun(Math.Min(RunBytes, budget), out run))
                {
                    break;
                }
            }
            catch (JournalCorruptionException e)
            {
                Damaged(f, t, e);
                break;
            }

            if (run.FirstOffset != t.ShippedEnd)
            {
                // Retention passed the reader (it held more than its bound back): nothing past the gap is shipped.
                throw GapAhead(t, run.FirstOffset);
            }

            // Before a byte of the run is sent: the standby's ACK of it may be read while the send still returns.
            t.ShippedEnd = run.FirstOffset + run.RecordCount;
            f.Begin(FrameKind.Records).I64(epoch).U32(t.Id).I64(run.FirstOffset).U32((uint)run.RecordCount).U32((uint)run.Length);
            if (copy || run.Length <= InlineRunBytes)
            {
                f.Bytes(run.Bytes).End();
                if (!copy && f.Length >= RunBytes)
                {
                    // Copied: the send, which blocks while the standby is behind, needs no mapping (see the Park below).
                    t.Reader.Park();
                    Send(f);
                }
            }
            else
            {
                // A big run (catch-up): the header from the buffer, the records straight from the mapping, for as long
                // as the socket takes them within the hold bound (see SendMapped).
                f.End(trailing: run.Length);
                lock (_sendLock)
                {
                    SendMapped(f, run.Bytes, t.Reader);
                }
            }

            sent += run.Length;
        }

        return sent;
    }

    /// <summary>
    /// The reader met a damaged record of the primary's journal (a check fails: bytes changed on disk in a segment the
    /// open trusted): it cannot be sent, nor anything after it (the standby's copy has no gaps). The link stays up and
    /// ships the other topics; this one's stream stops at <see cref="LinkTopic.ShippedEnd"/> and the standby is told so
    /// (<see cref="FrameKind.Damaged"/>), once per link. Ending the link instead made the standby reconnect at once and
    /// meet the damage again, forever. The primary logs it once and lists it in /status (<see cref="PrimaryReplicator.Damage"/>).
    /// </summary>
    private void Damaged(FrameBuffer f, LinkTopic t, JournalCorruptionException e)
    {
        var offset = t.ShippedEnd;
        t.DamagedAt = offset;
        var reason = _owner.OnDamaged(t.Topic.Name, offset, e);
        f.Begin(FrameKind.Damaged).U32(t.Id).I64(offset).Str(reason).End();
    }

    /// <summary>
    /// Ends the link (the sender thread's handler, which logs the message): the standby's next hello gets its copy of the
    /// topic restarted at the primary's tail. Counted once per link and topic (the journaler's thread may meet it first).
    /// </summary>
    private JournalException GapAhead(LinkTopic t, long offset)
    {
        if (t.GapAt is null)
        {
            t.GapAt = offset;
            _owner.CountRetentionPassed();
        }

        var limit = _owner.Options.MaxRetentionHoldBytes;
        var why = t.Reader is { PinOverrides: > 0 }
            ? $"it held retention back by more than its bound of {limit} bytes (ReplicationOptions.MaxRetentionHoldBytes)"
            : "they were deleted before this link began to send them";
        return new(
            JournalErrorCode.OffsetMismatch,
            $"topic '{t.Topic.Name}': retention passed a lagging standby: it needs offset {t.ShippedEnd} but the primary's journal continues at {offset} ({offset - t.ShippedEnd} records deleted unsent: {why}); ending the link so that the standby restarts its copy of the topic at the primary's oldest record");
    }

    private void Send(FrameBuffer f)
    {
        lock (_sendLock)
        {
            f.SendTo(_socket);
        }
    }
}
