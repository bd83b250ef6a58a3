using System.Diagnostics;
using System.Net.Sockets;
using FastBroker.Engine;

namespace FastBroker.Replication.Internal;

/// <summary>The ack side: the ack thread and the journaler's polls read the standby's frames, its silence ends the link.</summary>
internal sealed partial class StandbyLink
{
    private void AckLoop()
    {
        var silence = _owner.Options.StandbySilenceTimeout;
        try
        {
            // The standby answers every heartbeat, acks every burst, and its durable thread sends an empty ack every
            // 100 ms it has nothing else to send: silence for this long means it froze or its host died without a FIN
            // (TCP keepalive does not see a frozen process: its kernel still answers). Detached, its confirmations
            // fail or degrade to local as configured at once instead of each waiting out the ack timeout. Armed from
            // the standby's first frame on: before it, the standby applies the welcome's cuts and opens those
            // journals again (seconds on a cold cache), and has nothing to answer with yet; until then a generous
            // bound, so that a standby that froze right after the welcome is detached all the same.
            //
            // It waits in poll(2), not in a receive, and reads under the ack lock: the journaler may read the same
            // frames first (PollAcks) when a confirmation waits for them.
            var unarmedMicros = (int)Math.Min(int.MaxValue, Math.Max(silence.TotalMilliseconds, 30_000) * 1000);
            var silenceMicros = (int)Math.Min(int.MaxValue, silence.TotalMilliseconds * 1000);
            while (!_stopping)
            {
                var armed = Volatile.Read(ref _lastFrameTicks) != 0;
                if (!_socket.Poll(armed ? silenceMicros : unarmedMicros, SelectMode.SelectRead))
                {
                    var since = Volatile.Read(ref _lastFrameTicks);
                    if (since != 0 && Stopwatch.GetElapsedTime(since) < silence)
                    {
                        continue; // the journaler read what came
                    }

                    EndLink($"nothing from the standby for {silence.TotalMilliseconds:F0} ms (no ack, no heartbeat answer)");
                    return;
                }

                DeferToJournaler();
                lock (_ackLock)
                {
                    if (_stopping)
                    {
                        return; // ended or replaced while this thread waited for the lock: nothing more of it is credited
                    }

                    if (_socket.Available == 0 && !_socket.Poll(0, SelectMode.SelectRead))
                    {
                        continue; // the journaler took it
                    }

                    // Data, or the end of the stream / an error (the receive returns 0 or throws).
                    if (!_ackInput.Fill())
                    {
                        EndLink("the standby closed the connection");
                        return;
                    }

                    if (!HandleAckFrames())
                    {
                        EndLink(RefusedReason);
                        return;
                    }

                    _owner.ThreadPassed?.Invoke(ReplicationThread.AckReader);
                }
            }
        }
        catch (Exception ex) when (ex is SocketException or ObjectDisposedException or InvalidDataException)
        {
            EndLink(ex.Message);
        }
        finally
        {
            StopAcks();
        }
    }

    /// <summary>Tests only (<see cref="ReplicationOptions.AckReaderDefersFor"/>): waits until the journaler took what came, or the deferral passed.</summary>
    private void DeferToJournaler()
    {
        var deferFor = _owner.Options.AckReaderDefersFor;
        if (deferFor <= TimeSpan.Zero || _owner.Options.AckPoll <= TimeSpan.Zero)
        {
            return;
        }

        var start = Stopwatch.GetTimestamp();
        while (!_stopping && _socket.Available > 0 && Stopwatch.GetElapsedTime(start) < deferFor)
        {
            Thread.Sleep(1);
        }
    }

    /// <summary>
    /// Journaler thread (<see cref="ReplicationGate.PollAcks"/>): handles the standby's frames that have already
    /// arrived, without blocking. False when the ack reader has the link (it handles them), and until the sender
    /// thread has read the standby's STATE_DIGESTS (<see cref="ReadStateDigests"/>), which comes before them.
    /// </summary>
    public bool PollAcks()
    {
        if (_stopping || !_digestsRead || !Monitor.TryEnter(_ackLock))
        {
            return false;
        }

        try
        {
            if (_stopping || _socket.Available == 0)
            {
                return true;
            }

            _ackInput.Fill(); // bytes are waiting: it does not block
            var before = _acksReceived;
            var handled = HandleAckFrames();
            Volatile.Write(ref _journalerAcks, _journalerAcks + (_acksReceived - before));
            _owner.ThreadPassed?.Invoke(ReplicationThread.JournalerPoll);
            if (!handled)
            {
                EndLink(RefusedReason);
            }

            return true;
        }
        catch (Exception ex) when (ex is SocketException or ObjectDisposedException or InvalidDataException)
        {
            EndLink(ex.Message); // a malformed frame, one of an unknown kind, or the connection's end, as the ack reader would
            return false;
        }
        finally
        {
            Monitor.Exit(_ackLock);
        }
    }

    /// <summary>Under the ack lock: every whole frame buffered, until the link is over. False when the standby refused the stream.</summary>
    private bool HandleAckFrames()
    {
        while (!_stopping && _ackInput.TryNext(out var kind, out var body))
        {
            if (!HandleAckFrame(kind, body))
            {
                return false;
            }
        }

        return true;
    }

    /// <summary>Under the ack lock: one frame from the standby. False when the standby refused the stream.</summary>
    private bool HandleAckFrame(FrameKind kind, ReadOnlySpan<byte> body)
    {
        Volatile.Write(ref _lastFrameTicks, Stopwatch.GetTimestamp());
        switch (kind)
        {
            case FrameKind.Ack:
                OnAck(body);

                // The connections whose publishes this ACK released get their CONFIRMs from this thread (a
                // non-blocking send each) rather than a wake-up of their writers.
                _ackConfirms.End();
                return true;
            case FrameKind.StateAck:
                _owner.Gate.OnStateApplied(new FrameReader(body).I64());
                return true;
            case FrameKind.StateWanted:
                OnStateWanted(body);
                return true;
            case FrameKind.Refuse:
                var r = new FrameReader(body);
                var epoch = r.I64();
                r.U8();
                _owner.LogLink($"replication: standby refused the stream: {r.Str()}");
                if (epoch > _owner.Epoch)
                {
                    _owner.OnHigherEpoch(epoch);
                }

                return false;
            default:
                // STATE_DIGESTS included: the standby sends it once, right after the WELCOME (ReadStateDigests).
                throw new InvalidDataException($"unexpected replication frame {kind} from the standby");
        }
    }

    /// <summary>
    /// Any thread that finds the link over (the sender, the ack reader, the journaler's <see cref="PollAcks"/>): the
    /// first call reports it to the replicator with <paramref name="reason"/> (<see cref="PrimaryReplicator.OnLinkDown"/>:
    /// no longer its link, the gate told, the <c>disconnected</c> line logged), unless the link was closed from outside
    /// first (replaced by a newer link, or the replicator closing: it is no longer the replicator's link, and nothing is
    /// reported); every call stops its threads. The link is marked over first, and the report waits for the ack lock
    /// (<see cref="WaitOutAcks"/>): a newer link, which may attach once the replicator lets this one go, resets the
    /// topics' positions after the last credit of this one, never before it.
    /// </summary>
    private void EndLink(string reason)
    {
        _stopping = true;
        if (Interlocked.Exchange(ref _ended, 1) == 0)
        {
            WaitOutAcks();
            _owner.OnLinkDown(this, reason);
        }

        StopAcks();
    }

    /// <summary>
    /// The link is over (<see cref="_stopping"/> set before the call): waits until no thread of it is inside the ack
    /// lock. The credit path checks <see cref="_stopping"/> under that lock (<see cref="OnAck"/>, <see cref="HandleAckFrames"/>,
    /// the ack reader's loop, <see cref="PollAcks"/>), so once this returns nothing of the link is credited any more:
    /// an ACK it read cannot credit the confirmations after a newer link reset the topics' standby positions, with the
    /// positions of the standby this link was to. Called before the end is reported (<see cref="EndLink"/>) and by
    /// <see cref="Dispose"/> (a newer link replaces this one: the replicator starts it after). The lock is reentrant:
    /// <see cref="EndLink"/> may run under it.
    /// </summary>
    private void WaitOutAcks()
    {
        _owner.AckLockWaiting?.Invoke(this);
        Monitor.Enter(_ackLock);
        Monitor.Exit(_ackLock);
    }

    private void StopAcks()
    {
        _stopping = true;
        _owner.WakeSignal.Set();
        try
        {
            _socket.Shutdown(SocketShutdown.Both);
        }
        catch (Exception ex) when (ex is SocketException or ObjectDisposedException)
        {
        }
    }

    /// <summary>
    /// Under the ack lock: an ACK's positions (per topic id: received = the next offset the standby holds, durable = the
    /// next it has flushed), every one checked (<see cref="CheckAck"/>) before any is credited to the confirmations
    /// waiting for it: a frame with one position this link cannot have caused confirms nothing, and ends the link.
    /// Nothing is credited once the link is over (ended or replaced: <see cref="WaitOutAcks"/>).
    /// </summary>
    private void OnAck(ReadOnlySpan<byte> body)
    {
        var topics = _byId;
        var n = CheckAck(body, topics);
        var r = new FrameReader(body);
        r.U32();
        for (var i = 0u; i < n; i++)
        {
            var id = r.U32();
            var received = r.I64();
            var durable = r.I64();
            _owner.AckCrediting?.Invoke(this, topics[id].Topic);
            if (_stopping)
            {
                return; // ended or replaced: a newer link may have reset the topic's positions (WaitOutAcks)
            }

            topics[id].Acks.OnAck(received, durable, _ackConfirms);
        }

        Volatile.Write(ref _lastAckTicks, Stopwatch.GetTimestamp());
        Volatile.Write(ref _acksReceived, _acksReceived + 1); // under the ack lock
    }

    /// <summary>
    /// Under the ack lock: throws (the link ends, nothing of the frame credited) unless every position names a topic
    /// this link announced, received is at most what this link sent of it (<see cref="LinkTopic.ShippedEnd"/>), durable
    /// at most received, and neither is behind the topic's last ACK on this link (received: nor behind where the link
    /// started it). A standby that holds a record acknowledges it; one that says it holds more than it was sent, or
    /// less than it said before, would have the primary confirm to producers what no standby holds. Returns the count.
    /// </summary>
    private static uint CheckAck(ReadOnlySpan<byte> body, LinkTopic[] topics)
    {
        var r = new FrameReader(body);
        var n = r.U32();
        for (var i = 0u; i < n; i++)
        {
            var id = r.U32();
            var received = r.I64();
            var durable = r.I64();
            if (id >= topics.Length || !topics[id].Announced)
            {
                throw InvalidAck($"topic id {id}, which this link never announced");
            }

            var t = topics[id];
            var sent = t.ShippedEnd;
            if (received > sent)
            {
                throw InvalidAck(t, id, $"received position {received} is beyond {sent}, the end of what this link sent");
            }

            if (durable > received)
            {
                throw InvalidAck(t, id, $"durable position {durable} is beyond its received position {received}");
            }

            if (received < t.AckedReceived)
            {
                throw InvalidAck(t, id, $"received position {received} goes back from {t.AckedReceived}");
            }

            if (durable < t.AckedDurable)
            {
                throw InvalidAck(t, id, $"durable position {durable} goes back from {t.AckedDurable}");
            }

            t.AckedReceived = received;
            t.AckedDurable = durable;
        }

        return n;
    }

    private static InvalidDataException InvalidAck(string what) => new($"invalid ACK from the standby: {what}; nothing of it confirmed");

    // The topic's name is put in only on the way out: a good ACK, read per frame on the confirmation path, allocates nothing.
    private static InvalidDataException InvalidAck(LinkTopic t, uint id, string what) => InvalidAck($"topic '{t.Topic.Name}' (id {id}): {what}");
}
