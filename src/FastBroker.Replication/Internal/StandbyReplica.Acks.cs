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
        f.Begin(FrameKind.Ack).U32((uint)_touched.Count);
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

            f.U32(t.Id).I64(t.Journal.NextOffset).I64(t.Journal.DurableOffset);
            t.Touched = false;
        }

        f.End();
        lock (_sendLock)
        {
            f.SendTo(socket);
        }

        _touched.Clear();
        if (flushing)
        {
            _durableWake.Set();
        }
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
        var nextBackground = Stopwatch.GetTimestamp();
        while (!_stopping)
        {
            _durableWake.Wait(BackgroundFlush);
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
                var f = _durableFrame;
                Socket? link;
                lock (_byName)
                {
                    link = Volatile.Read(ref _socket);
                    pending.RemoveAll(t => t.Id >= _byId.Count || !ReferenceEquals(_byId[(int)t.Id], t));
                    f.Begin(FrameKind.Ack).U32((uint)pending.Count);
                    foreach (var t in pending)
                    {
                        f.U32(t.Id).I64(t.Journal.NextOffset).I64(t.Journal.DurableOffset);
                    }
                }

                f.End();
                if (pending.Count == 0 || link is null)
                {
                    f.Clear(); // nothing to send, or no link yet: the next ACK starts afresh
                    continue;
                }

                DurableAckBuilt?.Invoke(pending.Count);
                lock (_sendLock)
                {
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

    private static FrameBuffer EmptyAck(FrameBuffer f)
    {
        f.Begin(FrameKind.Ack).U32(0).End();
        return f;
    }
}
