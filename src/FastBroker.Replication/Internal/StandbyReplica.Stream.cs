using System.Net.Sockets;
using System.Text;
using FastBroker.Engine;

namespace FastBroker.Replication.Internal;

// The receive loop after the welcome: RECORDS written to each topic's journal, TOPIC, FLUSH, RETAINED and heartbeats.
internal sealed partial class StandbyReplica
{
    private readonly List<(ReplicaTopic Topic, long Head)> _heads = []; // receive thread: a heartbeat's heads, reused (nothing allocated per heartbeat)

    private string Stream(Socket socket, FrameInput input, out long refusedEpoch)
    {
        refusedEpoch = -1;
        while (!_stopping)
        {
            if (!input.TryNext(out var kind, out var body))
            {
                if (_touched.Count > 0)
                {
                    CommitAndAck(socket);
                }

                HandOffState(socket);
                if (!input.Fill())
                {
                    return "the primary closed the connection";
                }

                // Bytes from the primary, if not yet a whole frame (a big run on a slow link): it is not silent.
                Touch();
                continue;
            }

            Touch();
            switch (kind)
            {
                case FrameKind.Records:
                    if (!OnRecords(socket, body, out refusedEpoch, out var why))
                    {
                        return why;
                    }

                    break;
                case FrameKind.Topic:
                    OnTopic(body);
                    break;
                case FrameKind.State:
                    OnState(body);
                    break;
                case FrameKind.Positions:
                    OnPositions(body);
                    break;
                case FrameKind.StateGone:
                    OnStateGone(body);
                    break;
                case FrameKind.Flush:
                    OnFlush(body);
                    break;
                case FrameKind.Retained:
                    OnRetained(body);
                    break;
                case FrameKind.Damaged:
                    OnPrimaryDamaged(body);
                    break;
                case FrameKind.Heartbeat:
                    var heartbeat = new FrameReader(body);
                    var epoch = heartbeat.I64();
                    if (epoch < _state.Epoch)
                    {
                        refusedEpoch = _state.Epoch;
                        return $"heartbeat from a stale primary (epoch {epoch} < {_state.Epoch})";
                    }

                    OnHeads(ref heartbeat);

                    // An empty ACK answers every heartbeat: an idle standby that stops answering (frozen, its host
                    // gone without a FIN) is how the primary tells it from one with nothing to acknowledge.
                    lock (_sendLock)
                    {
                        EmptyAck(_heartbeatAck).SendTo(socket); // SendTo empties the buffer: built again each time
                    }

                    ThreadPassed?.Invoke(ReplicationThread.StandbyReceive);
                    break;
                default:
                    return $"unexpected replication frame {kind}";
            }

            if (input.Drained)
            {
                if (_touched.Count > 0)
                {
                    CommitAndAck(socket);
                }

                HandOffState(socket);
            }
        }

        return "stopping";
    }

    private bool OnRecords(Socket socket, ReadOnlySpan<byte> body, out long refusedEpoch, out string why)
    {
        refusedEpoch = -1;
        why = "";
        var r = new FrameReader(body);
        var epoch = r.I64();
        var id = r.U32();
        var first = r.I64();
        var count = r.U32();
        var length = (int)r.U32();
        var records = r.Take(length);
        if (epoch != _state.Epoch)
        {
            refusedEpoch = _state.Epoch;
            why = $"records of epoch {epoch} while following epoch {_state.Epoch}";
            return false;
        }

        if (id >= _byId.Count || _byId[(int)id] is not { } t)
        {
            throw new InvalidDataException($"records for unknown topic id {id}");
        }

        RecordsArriving?.Invoke(t.Name, first, count);
        var journal = t.Journal;
        var offset = first;
        var spin = new SpinWait();
        while (!records.IsEmpty)
        {
            if (journal.TryAppendRecords(records, offset, out var appended))
            {
                break;
            }

            // Back-pressure (too much not yet flushed): skip what went in, let the flusher catch up.
            records = Skip(records, appended);
            offset += appended;
            journal.Commit();
            spin.SpinOnce(sleep1Threshold: 20);
        }

        if (!t.Touched)
        {
            t.Touched = true;
            _touched.Add(t);
        }

        Interlocked.Add(ref _recordsReceived, count);
        Interlocked.Add(ref _bytesReceived, length);
        return true;
    }

    /// <summary>The heads in a heartbeat: how far each topic's journal goes on the primary (what the lag is measured to).</summary>
    private void OnHeads(ref FrameReader r)
    {
        // Read and checked whole before any is applied.
        var n = r.U32();
        var heads = _heads;
        heads.Clear();
        for (var i = 0; i < n; i++)
        {
            var id = r.U32();
            var head = r.I64();
            if (id >= _byId.Count || _byId[(int)id] is not { } t)
            {
                throw new InvalidDataException($"head for unknown topic id {id}");
            }

            heads.Add((t, head));
        }

        foreach (var (t, head) in heads)
        {
            Volatile.Write(ref t.PrimaryHead, head);
        }

        heads.Clear(); // holds no topic between heartbeats
        _headsReported = true;
    }

    /// <summary>A standby-durable confirmation waits: flush this topic after the current burst (not in the background).</summary>
    private void OnFlush(ReadOnlySpan<byte> body)
    {
        var id = new FrameReader(body).U32();
        if (id >= _byId.Count || _byId[(int)id] is not { } t)
        {
            throw new InvalidDataException($"flush for unknown topic id {id}");
        }

        t.FlushWanted = true;
        if (!t.Touched)
        {
            t.Touched = true;
            _touched.Add(t);
        }
    }

    /// <summary>The primary's tail in a topic: this copy's retention may delete only what lies wholly below it.</summary>
    /// <summary>
    /// The primary cannot send a topic's records from an offset on (its journal is damaged there): kept for /status
    /// (<see cref="PrimaryDamage"/>) until the link ends, and logged once per topic and offset, not once per link.
    /// </summary>
    private void OnPrimaryDamaged(ReadOnlySpan<byte> body)
    {
        var r = new FrameReader(body);
        var id = r.U32();
        var offset = r.I64();
        var reason = r.Str();
        if (id >= _byId.Count || _byId[(int)id] is not { } t)
        {
            throw new InvalidDataException($"damage report for unknown topic id {id}");
        }

        var damage = (offset, reason);
        Volatile.Write(ref t.PrimaryDamage, Tuple.Create(offset, reason));
        if (t.DamageLogged != damage)
        {
            t.DamageLogged = damage;
            _options.Log?.Invoke($"standby: topic '{t.Name}': {reason}; this copy holds it up to offset {t.Journal.NextOffset}, and follows the primary's other topics");
        }
    }

    private void OnRetained(ReadOnlySpan<byte> body)
    {
        var r = new FrameReader(body);
        var id = r.U32();
        var first = r.I64();
        if (id >= _byId.Count)
        {
            throw new InvalidDataException($"retained offset for unknown topic id {id}");
        }

        if (_byId[(int)id] is { } t)
        {
            Volatile.Write(ref t.PrimaryFirst, first);
        }
    }

    private static ReadOnlySpan<byte> Skip(ReadOnlySpan<byte> records, int count)
    {
        for (var i = 0; i < count; i++)
        {
            var length = (int)System.Buffers.Binary.BinaryPrimitives.ReadUInt32LittleEndian(records);
            records = records[((length + 7) & ~7)..];
        }

        return records;
    }

    private void OnTopic(ReadOnlySpan<byte> body)
    {
        var r = new FrameReader(body);
        var id = (int)r.U32();
        var name = r.Str();
        var meta = r.Str();
        var from = r.I64();
        if (!TopicName.IsValid(name))
        {
            throw new InvalidDataException($"invalid topic name '{name}' from the primary");
        }

        if (id is < 0 or > MaxTopicId || from < 0)
        {
            throw new InvalidDataException($"topic '{name}' from the primary: id {(uint)id}, first offset {from}");
        }

        var dir = Path.Combine(_topicsRoot, name);
        ReplicaTopic? t;
        lock (_byName)
        {
            _byName.TryGetValue(name, out t);
        }

        if (t is null)
        {
            // Checked before anything is created: settings that do not parse leave no directory behind.
            var settings = TopicRegistry.ParseMeta(meta, $"topic '{name}' from the primary: its topic.meta");
            t = CreateCopy(name, dir, Encoding.UTF8.GetBytes(meta), settings, from);
        }
        else if (t.Journal.NextOffset != from)
        {
            throw new InvalidDataException($"topic '{name}': the primary streams from {from}, this copy ends at {t.Journal.NextOffset}");
        }

        lock (_byName)
        {
            while (_byId.Count <= id)
            {
                _byId.Add(null!);
            }

            _byId[id] = t;
            t.Id = (uint)id;
        }
    }
}
