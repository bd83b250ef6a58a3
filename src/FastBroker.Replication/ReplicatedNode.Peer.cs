using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using FastBroker.Net;
using FastBroker.Replication.Internal;

namespace FastBroker.Replication;

// The replication port: probes between the two nodes, and standbys attaching.
public sealed partial class ReplicatedNode
{
    /// <summary>
    /// Asks the peer what it is; null when it does not answer within <paramref name="wait"/> (its host name resolved,
    /// each address it resolves to tried, and the answer read), as for a peer that is not there.
    /// </summary>
    private async Task<PeerStatus?> ProbeAsync(PeerAddress peer, TimeSpan wait)
    {
        try
        {
            using var timeout = CancellationTokenSource.CreateLinkedTokenSource(_stop.Token);
            timeout.CancelAfter(wait);
            using var socket = await ConnectAsync(peer, timeout.Token).ConfigureAwait(false);
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
            var count = r.U32();
            Dictionary<string, long>? heads = null;
            if ((flags & StatusHeadsKnown) != 0)
            {
                // Not more than the frame can hold: a count past it ends in a short read (InvalidDataException).
                heads = new Dictionary<string, long>((int)Math.Min(count, 4096u), StringComparer.Ordinal);
                for (var i = 0u; i < count; i++)
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

    /// <summary>A connection to the first of the addresses <paramref name="peer"/> resolves to now that accepts one.</summary>
    private static async Task<Socket> ConnectAsync(PeerAddress peer, CancellationToken ct)
    {
        var addresses = await peer.ResolveAsync(ct).ConfigureAwait(false);
        for (var i = 0; ; i++)
        {
            var socket = new Socket(SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
            try
            {
                await socket.ConnectAsync(new IPEndPoint(addresses[i], peer.Port), ct).ConfigureAwait(false);
                return socket;
            }
            catch (SocketException) when (i < addresses.Length - 1)
            {
                socket.Dispose(); // the next address
            }
            catch
            {
                socket.Dispose();
                throw;
            }
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
                    var prober = r.Str();
                    var theirEpoch = r.I64();
                    if (theirEpoch > _state.Epoch && _role == NodeRole.Primary)
                    {
                        SawNewerEpoch(theirEpoch, prober);
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

    /// <summary>
    /// STATUS: role, epoch, node id, flags (<see cref="StatusHeadsKnown"/>, <see cref="StatusDefers"/>), then each
    /// topic's head (name, next offset) when known: a node that is not primary reports the heads of the journals it
    /// has open, so that two nodes deciding at once agree on which of them holds more of the log. Heads are known only
    /// while a copy is open: between two copies (one closed, the next opening) the answer carries none.
    /// </summary>
    private void WriteStatusFrame(FrameBuffer f)
    {
        var role = _role;
        var copy = role == NodeRole.Primary ? null : Volatile.Read(ref _replica) ?? Volatile.Read(ref _opened);
        var heads = copy?.OpenHeads(); // none from a copy closed meanwhile (one being swapped out): not an empty log
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
    /// is ahead on some topic and behind on none (a topic it lacks counts as empty). Each ahead on a different topic is
    /// <see cref="LogOrder.Diverged"/>: whichever took over would cut records only the other holds, which may have been
    /// confirmed, so neither takes over automatically (see DecideAsync and AwaitingPeerAhead).
    /// </summary>
    internal static LogOrder CompareLogs(long epochA, IReadOnlyDictionary<string, long> a, long epochB, IReadOnlyDictionary<string, long> b)
    {
        if (epochA != epochB)
        {
            return epochA > epochB ? LogOrder.FirstAhead : LogOrder.SecondAhead;
        }

        bool aAhead = false, bAhead = false;
        foreach (var topic in a.Keys.Union(b.Keys))
        {
            var na = a.GetValueOrDefault(topic);
            var nb = b.GetValueOrDefault(topic);
            aAhead |= na > nb;
            bAhead |= nb > na;
        }

        return (aAhead, bAhead) switch
        {
            (true, true) => LogOrder.Diverged,
            (true, false) => LogOrder.FirstAhead,
            (false, true) => LogOrder.SecondAhead,
            _ => LogOrder.Equal,
        };
    }

    /// <summary>What <see cref="CompareLogs"/> found.</summary>
    internal enum LogOrder
    {
        Equal,
        FirstAhead,
        SecondAhead,

        /// <summary>The same epoch, each ahead on a different topic.</summary>
        Diverged,
    }

    private static string DescribeAhead(IReadOnlyDictionary<string, long> more, IReadOnlyDictionary<string, long> less) =>
        string.Join(", ", more.Where(p => p.Value > less.GetValueOrDefault(p.Key)).Take(5).Select(p => $"'{p.Key}' to {p.Value} against {less.GetValueOrDefault(p.Key)}"));

    /// <summary>
    /// Once per pair of heads: the peer and this node each hold records of a topic the other lacks (same epoch), so
    /// neither takes over on its own; the operator promotes the one whose records are to be kept.
    /// </summary>
    private void LogDiverged(PeerStatus peer, IReadOnlyDictionary<string, long> peerHeads, IReadOnlyDictionary<string, long> mine)
    {
        var line = $"the logs have diverged: this node is ahead on {DescribeAhead(mine, peerHeads)}, peer '{peer.NodeId}' on {DescribeAhead(peerHeads, mine)} (epoch {peer.Epoch}): "
            + "neither takes over on its own, as it would cut records the other holds, which may have been confirmed; promote the node whose records are to be kept (fastbroker promote), and the other's extra records are cut when it follows it";
        if (line != _divergedLogged)
        {
            _divergedLogged = line;
            Log(line);
        }
    }

    /// <summary>The reason a node waits as standby when its log and the peer's have diverged (its role line).</summary>
    private static string DivergedWhy(string peerId) =>
        $"the logs of this node and peer '{peerId}' have diverged: waiting for an operator to promote one";

    /// <summary>
    /// As standby, the peer (not primary) answers with heads that diverge from this node's: waited for as at the start
    /// (<see cref="AwaitingPeerAhead"/>), logged once per pair of heads (<see cref="LogDiverged"/>), and, if this node
    /// became standby for another reason (its probe at the start did not reach the peer, or found it without heads),
    /// its reason is the one the start gives, with that role line logged once. Only its status changes: it asks for
    /// no lease and does not promote itself while the logs stay diverged.
    /// </summary>
    private void NoteDivergedAsStandby(PeerStatus peer, IReadOnlyDictionary<string, long> peerHeads, IReadOnlyDictionary<string, long> mine)
    {
        Volatile.Write(ref _peerDivergedSince, Stopwatch.GetTimestamp());
        LogDiverged(peer, peerHeads, mine);
        var why = DivergedWhy(peer.NodeId);
        if (_roleWhy != why)
        {
            _roleWhy = why;
            Log($"{NodeRole.Standby} (epoch {_state.Epoch}): {why}");
        }
    }

    private readonly record struct PeerStatus(NodeRole Role, long Epoch, string NodeId, bool DefersToPeer, Dictionary<string, long>? Heads);
}
