using System.Buffers;
using System.Text;
using FastBroker.Protocol;

namespace FastBroker.ProtocolTests;

/// <summary>Records every frame as a canonical text line, so a parse of split input can be compared with the whole.</summary>
internal struct Recorder : IClientFrameHandler, IServerFrameHandler
{
    public Recorder()
    {
        Log = [];
    }

    public List<string> Log { get; }

    private static string H(in FrameHeader h) => $"{FrameTypes.GetName(h.Type)}#{h.RequestId} f={h.Flags}";

    private static string Hex(in ReadOnlySequence<byte> s) => Convert.ToHexString(s.ToArray());

    private static string Str(ReadOnlySpan<byte> s) => Encoding.UTF8.GetString(s);

    private static string Str(in ReadOnlySequence<byte> s) => Encoding.UTF8.GetString(s.ToArray());

    private static string Headers(in HeaderBlock block)
    {
        var sb = new StringBuilder("{");
        foreach (var e in block)
        {
            sb.Append(Str(e.Name)).Append('=').Append(Hex(e.Value)).Append(';');
        }

        return sb.Append('}').ToString();
    }

    private static string Msg(ReadOnlySpan<byte> topic, in ReadOnlySequence<byte> key, in HeaderBlock headers, in ReadOnlySequence<byte> payload, in ReadOnlySequence<byte> block)
    {
        // The message block must be exactly key + headers + payload with their lengths.
        var expected = new byte[MessageBlock.GetLength((int)key.Length, (int)headers.Entries.Length, (int)payload.Length)];
        MessageBlock.Write(expected, key.ToArray(), headers.Entries.ToArray(), payload.ToArray());
        var blockOk = expected.AsSpan().SequenceEqual(block.ToArray()) ? "" : " BAD-BLOCK";
        return $"topic={Str(topic)} key={Hex(key)} h={Headers(headers)}({headers.Count}) p={Hex(payload)}{blockOk}";
    }

    public readonly void OnHello(in FrameHeader header, in HelloFrame f)
        => Log.Add($"{H(header)} v={f.MinVersion}-{f.MaxVersion} feat={(ulong)f.Features} max={f.MaxInboundFrameSize} name={Str(f.ClientName)} ver={Str(f.ClientVersion)} token={Hex(f.AuthToken)}");

    public readonly void OnPing(in FrameHeader header) => Log.Add(H(header));

    public readonly void OnPong(in FrameHeader header) => Log.Add(H(header));

    public readonly void OnPublish(in FrameHeader header, in PublishFrame f)
        => Log.Add($"{H(header)} pid={f.ProducerId} seq={f.ProducerSequence} ttl={f.TtlMs} d={f.Durability} nc={f.NoConfirm} {Msg(f.Topic, f.Key, f.Headers, f.Payload, f.MessageBlock)}");

    public readonly void OnPublishBatch(in FrameHeader header, in PublishBatchFrame f)
    {
        var sb = new StringBuilder($"{H(header)} pid={f.ProducerId} seq={f.FirstProducerSequence} d={f.Durability} nc={f.NoConfirm} n={f.Count}");
        foreach (var e in f)
        {
            sb.Append($" [{e.Index} ttl={e.TtlMs} {Msg(e.Topic, e.Key, e.Headers, e.Payload, e.MessageBlock)}]");
        }

        Log.Add(sb.ToString());
    }

    public readonly void OnSubscribe(in FrameHeader header, in SubscribeFrame f)
        => Log.Add($"{H(header)} sub={f.SubscriptionId} credit={f.InitialCredit} start={f.Start}/{f.StartValue} fb={f.Fallback} pattern={Str(f.Pattern)} durable={Str(f.DurableName)} filters={Headers(f.Filters)}");

    public readonly void OnInitProducer(in FrameHeader header, ulong producerId, ulong? epoch) => Log.Add(epoch is null ? $"{H(header)} producer={producerId}" : $"{H(header)} producer={producerId} epoch={epoch}");

    public readonly void OnUnsubscribe(in FrameHeader header, uint subscriptionId) => Log.Add($"{H(header)} sub={subscriptionId}");

    public readonly void OnCredit(in FrameHeader header, uint subscriptionId, uint credit) => Log.Add($"{H(header)} sub={subscriptionId} credit={credit}");

    public readonly void OnCommit(in FrameHeader header, uint subscriptionId, ulong offset, ReadOnlySpan<byte> topic) => Log.Add($"{H(header)} sub={subscriptionId} offset={offset} topic={Str(topic)}");

    public readonly void OnJoinGroup(in FrameHeader header, in JoinGroupFrame f)
        => Log.Add($"{H(header)} sub={f.SubscriptionId} prefetch={f.Prefetch} vis={f.VisibilityTimeoutMs} max={f.MaxDeliveries} group={Str(f.Group)} topic={Str(f.Topic)}");

    public readonly void OnAck(in FrameHeader header, in AckFrame f)
    {
        var sb = new StringBuilder($"{H(header)} sub={f.SubscriptionId} n={f.Count}");
        foreach (var t in f)
        {
            sb.Append(' ').Append(t);
        }

        Log.Add(sb.ToString());
    }

    public readonly void OnNack(in FrameHeader header, in NackFrame f)
        => Log.Add($"{H(header)} sub={f.SubscriptionId} tag={f.Tag} requeue={f.Requeue} delay={f.DelayMs} text={Str(f.ErrorText)}");

    public readonly void OnAdmin(in FrameHeader header, in AdminFrame f) => Log.Add($"{H(header)} q={f.Query} arg={Str(f.Argument)}");

    public readonly void OnWelcome(in FrameHeader header, in WelcomeFrame f)
        => Log.Add($"{H(header)} v={f.Version} max={f.MaxFrameSize} feat={(ulong)f.Features} conn={f.ConnectionId} subs={f.MaxSubscriptions} hb={f.HeartbeatIntervalMs} name={Str(f.ServerName)} ver={Str(f.ServerVersion)}");

    public readonly void OnOk(in FrameHeader header, ulong value, ulong epoch) => Log.Add(epoch == 0 ? $"{H(header)} value={value}" : $"{H(header)} value={value} epoch={epoch}");

    public readonly void OnError(in FrameHeader header, in ErrorFrame f)
        => Log.Add($"{H(header)} code={f.Code} sub={f.SubscriptionId} close={f.CloseConnection} ended={f.SubscriptionEnded} reason={f.GetReasonString()}");

    public readonly void OnConfirm(in FrameHeader header, in ConfirmFrame f)
    {
        var sb = new StringBuilder($"{H(header)} n={f.Count}");
        foreach (var r in f)
        {
            sb.Append($" [{r.FirstRequestId}+{r.Count} {r.Status} dup={r.Duplicate} @{r.FirstOffset}]");
        }

        Log.Add(sb.ToString());
    }

    public readonly void OnDeliver(in FrameHeader header, in DeliverFrame f)
        => Log.Add($"{H(header)} sub={f.SubscriptionId} tag={f.Tag} ts={f.TimestampNs} {Msg(f.Topic, f.Key, f.Headers, f.Payload, f.MessageBlock)}");

    public readonly void OnDeliverBatch(in FrameHeader header, in DeliverBatchFrame f)
    {
        var sb = new StringBuilder($"{H(header)} sub={f.SubscriptionId} n={f.Count}");
        foreach (var e in f)
        {
            sb.Append($" [{e.Index} tag={e.Tag} ts={e.TimestampNs} {Msg(e.Topic, e.Key, e.Headers, e.Payload, e.MessageBlock)}]");
        }

        Log.Add(sb.ToString());
    }

    public readonly void OnDropped(in FrameHeader header, uint subscriptionId, ulong droppedCount, ulong resumeOffset)
        => Log.Add($"{H(header)} sub={subscriptionId} dropped={droppedCount} resume={resumeOffset}");

    public readonly void OnAdminResult(in FrameHeader header, in AdminResultFrame f)
        => Log.Add($"{H(header)} q={f.Query} fmt={f.Format} result={Str(f.Result)}");
}
