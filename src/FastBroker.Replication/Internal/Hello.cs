namespace FastBroker.Replication.Internal;

/// <summary>
/// A standby's opening: who it is, the epoch it last followed, what each of its topics holds (first, next, and the
/// durable end: what it has flushed, which a standby-durable confirmation may count on), and its epoch history (where
/// its records stop being the primary's: see <see cref="NodeState.DivergenceOffset"/>).
/// </summary>
internal sealed record Hello(string NodeId, long Epoch, IReadOnlyList<(string Topic, long First, long Next, long Durable)> Topics, string History)
{
    public static Hello Parse(ReadOnlySpan<byte> body)
    {
        var r = new FrameReader(body);
        if (r.U32() != Wire.Magic)
        {
            throw new InvalidDataException("not a FastBroker replication hello");
        }

        var version = r.U16();
        if (version != Wire.Version)
        {
            throw new InvalidDataException($"replication protocol version {version}, this node speaks {Wire.Version}");
        }

        var epoch = r.I64();
        var id = r.Str();
        var n = r.U32();
        var topics = new List<(string, long, long, long)>((int)Math.Min(n, 4096u));
        for (var i = 0u; i < n; i++)
        {
            topics.Add((r.Str(), r.I64(), r.I64(), r.I64()));
        }

        // Checked here, where a bad HELLO closes the connection: the replicator's thread parses it again to compute cuts.
        var history = r.Str();
        return NodeState.TryParseHistory(history, out _, out var error)
            ? new Hello(id, epoch, topics, history)
            : throw new InvalidDataException($"HELLO from '{id}': epoch history: {error}");
    }

    public void Write(FrameBuffer f)
    {
        f.Begin(FrameKind.Hello).U32(Wire.Magic).U16(Wire.Version).I64(Epoch).Str(NodeId).U32((uint)Topics.Count);
        foreach (var (topic, first, next, durable) in Topics)
        {
            f.Str(topic).I64(first).I64(next).I64(durable);
        }

        f.Str(History).End();
    }
}
