using System.Diagnostics;
using System.Net.Sockets;
using FastBroker.Journal;

namespace FastBroker.Replication.Internal;

// Acknowledgements: the received ACK after each burst, the durable thread's flushes and durable ACKs, and keep-alives.
internal sealed partial class StandbyReplica
{
    private void CommitAndAck(Socket socket)
    {
        var f = _ackFrame;
        var flushing = false;
        foreach (var t in _touched)
        {
            // Flush now only when the primary holds a standby-durable confirmation for this topic; otherwise the
            // durable thread flushes it in the background (received acks never wait for a disk).
            if (t.FlushWanted)
            {
                t.FlushWanted = false;
                t.Journal.Commit();
                t.DurablePending = true;
                flushing = true;
            }
            else
            {
                t.FlushLater = true;
            }

        }

        // Built under the send lock, as the durable thread's: the positions go out in the order they were read, so the
        // primary never sees one go back (it ends the link on that: StandbyLink.CheckAck).
        lock (_sendLock)
        {
            f.Begin(FrameKind.Ack).U32((uint)_touched.Count);
            foreach (var t in _touched)
            {
                AckEntry(f, t.Id, t);
                t.Touched = false;
            }

            f.End();
            f.SendTo(socket);
        }

        _touched.Clear();
        if (flushing)
        {
            _durableWake.Set();
        }

        ThreadPassed?.Invoke(ReplicationThread.StandbyReceive);
    }

    private Thread StartDurableThread()
    {
        var thread = new Thread(DurableLoop) { IsBackground = true, Name = "fastbroker-standby-durable" };
        thread.Start();
        return thread;
    }

    /// <summary>Sends each topic's flushed position once its group commit completes.</summary>
    private void DurableLoop()
    {
        var pending = new List<ReplicaTopic>();
        var ids = new List<uint>(); // pending's ids on the link they were taken for
        var nextBackground = Stopwatch.GetTimestamp();
        while (!_stopping)
        {
            _durableWake.Wait(BackgroundFlush);
            ThreadPassed?.Invoke(ReplicationThread.StandbyDurable);
            SyncStateAndAck(); // before the journals' acks: a commit's answer may wait for it
            pending.Clear();
            var background = Stopwatch.GetTimestamp() >= nextBackground;
            if (background)
            {
                nextBackground = Stopwatch.GetTimestamp() + (long)(BackgroundFlush.TotalSeconds * Stopwatch.Frequency);
            }

            lock (_byName)
            {
                foreach (var t in _byId)
                {
                    if (t is not null && (t.DurablePending || (background && t.FlushLater)))
                    {
                        if (background)
                        {
                            t.FlushLater = false;
                        }

                        pending.Add(t);
                    }
                }
            }

            if (pending.Count == 0)
            {
                if (background)
                {
                    SendKeepAlive();
                }

                continue;
            }

            try
            {
                foreach (var t in pending)
                {
                    var target = t.Journal.NextOffset;
                    t.DurablePending = false;
                    if (target > 0 && !t.Journal.WaitForDurable(target - 1, TimeSpan.FromSeconds(1)))
                    {
                        t.DurablePending = true;
                    }
                }

                // Only topics still known under their id on the current link: one replaced or renumbered meanwhile
                // (a new link, a truncation) must not have its old positions credited to another topic.
                // The ids and the socket they go to are taken together; the positions are read under the send lock,
                // so that the receive thread's ACKs and these go out in the order their positions were read.
                Socket? link;
                lock (_byName)
                {
                    link = Volatile.Read(ref _socket);
                    // Kept in place by hand: a RemoveAll predicate reads _byId, so it captures this and was a new
                    // delegate on every durable ACK and background flush.
                    ids.Clear();
                    var kept = 0;
                    for (var i = 0; i < pending.Count; i++)
                    {
                        var t = pending[i];
                        if (t.Id < _byId.Count && ReferenceEquals(_byId[(int)t.Id], t))
                        {
                            pending[kept++] = t;
                            ids.Add(t.Id);
                        }
                    }

                    pending.RemoveRange(kept, pending.Count - kept);
                }

                if (pending.Count == 0 || link is null)
                {
                    continue; // nothing to send, or no link yet
                }

                DurableAckBuilt?.Invoke(pending.Count);
                var f = _durableFrame;
                lock (_sendLock)
                {
                    f.Begin(FrameKind.Ack).U32((uint)pending.Count);
                    for (var i = 0; i < pending.Count; i++)
                    {
                        AckEntry(f, ids[i], pending[i]);
                    }

                    f.End();
                    f.SendTo(link); // the socket of the link whose ids it holds (SendTo empties f even if it fails)
                }
            }
            catch (Exception ex) when (ex is SocketException or ObjectDisposedException or JournalException)
            {
                // The receive loop notices the broken link; a disposed journal means we are stopping.
            }
        }
    }

    /// <summary>
    /// An empty ACK from the durable thread every background tick it has nothing else to send: the primary hears from
    /// this standby even while its receive thread is busy (a long catch-up write waiting for the flusher) and so
    /// detaches only a standby that is really silent (frozen, or its host gone).
    /// </summary>
    private void SendKeepAlive()
    {
        Socket? link;
        lock (_byName)
        {
            link = PrimaryId is null ? null : Volatile.Read(ref _socket);
        }

        if (link is null)
        {
            return;
        }

        try
        {
            lock (_sendLock)
            {
                EmptyAck(_keepAlive).SendTo(link);
            }
        }
        catch (Exception ex) when (ex is SocketException or ObjectDisposedException)
        {
            // The receive loop notices the broken link.
        }
    }

    /// <summary>
    /// One topic's positions in an ACK: the durable one read first, so that it is never past the received one read
    /// after it (the receive thread may append between the reads; the primary refuses durable past received).
    /// </summary>
    private static void AckEntry(FrameBuffer f, uint id, ReplicaTopic t)
    {
        var durable = t.Journal.DurableOffset;
        f.U32(id).I64(t.Journal.NextOffset).I64(durable);
    }

    private static FrameBuffer EmptyAck(FrameBuffer f)
    {
        f.Begin(FrameKind.Ack).U32(0).End();
        return f;
    }
}
