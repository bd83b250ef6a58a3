using System.Text.Json;

namespace FastBroker.ReplicationTests.Failover;

/// <summary>A pair node's admin <c>GET /status</c> document, parsed (and kept verbatim for failure messages).</summary>
internal sealed record NodeStatus(
    string NodeId,
    string Role,
    long Epoch,
    NodeStatus.StandbyView? Standby,
    NodeStatus.ReplicaView? Replica,
    IReadOnlyList<string> Events,
    string Json)
{
    public bool IsPrimary => Role == "primary";

    public bool IsStandby => Role == "standby";

    /// <summary>
    /// True when this (primary) node has a standby that confirms its standby-mode publishes: attached and welcomed, so
    /// that the replication gate counts it (<c>standby.confirming</c>). <c>standby.attached</c> alone is true from the
    /// link's acceptance, while the primary still welcomes the standby and a publish is confirmed as with no standby.
    /// </summary>
    public bool StandbyConfirming => IsPrimary && Standby is { Attached: true, Confirming: true };

    /// <summary>
    /// True when this (primary) node has a standby confirming (<see cref="StandbyConfirming"/>) that holds all of
    /// <paramref name="topic"/> durably, and no witness records that standby behind (which would keep it from being
    /// promoted).
    /// </summary>
    public bool StandbyCaughtUp(string topic) =>
        StandbyConfirming && Standby is { WitnessRecordsBehind: false } s && s.Topics.FirstOrDefault(t => t.Topic == topic) is { } t && t.Durable == t.Head && t.Received == t.Head;

    /// <summary>This (standby) node's copy of <paramref name="topic"/>, or null.</summary>
    public ReplicaTopic? ReplicaOf(string topic) => Replica?.Topics.FirstOrDefault(t => t.Topic == topic);

    /// <summary>
    /// The one cut of <paramref name="topic"/> this (standby) node reported when it (re)joined its primary, asserted to
    /// be at <paramref name="offset"/>.
    /// </summary>
    public string AssertCutAt(string topic, long offset)
    {
        var cut = Assert.Single(Replica!.Truncations, t => t.Contains($"'{topic}'", StringComparison.Ordinal));
        Assert.Contains($"cut at offset {offset}", cut, StringComparison.Ordinal);
        return cut;
    }

    /// <summary>When the node logged its first event containing <paramref name="text"/> (time of day on its clock), or null.</summary>
    public TimeSpan? EventTime(string text) =>
        Events.FirstOrDefault(e => e.Contains(text, StringComparison.Ordinal)) is { } e
            ? TimeSpan.ParseExact(e.AsSpan(0, 12), @"hh\:mm\:ss\.fff", System.Globalization.CultureInfo.InvariantCulture)
            : null;

    public static NodeStatus Parse(string json)
    {
        using var doc = JsonDocument.Parse(json);
        var root = doc.RootElement;
        StandbyView? standby = null;
        if (root.TryGetProperty("standby", out var s))
        {
            standby = new StandbyView(
                s.GetProperty("attached").GetBoolean(),
                s.GetProperty("confirming").GetBoolean(),
                s.TryGetProperty("acksReceived", out var acks) ? acks.GetInt64() : 0,
                s.TryGetProperty("journalerAcks", out var journalerAcks) ? journalerAcks.GetInt64() : 0,
                s.TryGetProperty("retentionPassed", out var retentionPassed) ? retentionPassed.GetInt64() : 0,
                s.TryGetProperty("degraded", out var degraded) ? degraded.GetInt64() : 0,
                s.TryGetProperty("witnessRecordsBehind", out var behind) && behind.GetBoolean(),
                s.TryGetProperty("topics", out var topics)
                    ? [.. topics.EnumerateArray().Select(t => new StandbyTopic(t.GetProperty("topic").GetString()!, t.GetProperty("head").GetInt64(), t.GetProperty("received").GetInt64(), t.GetProperty("durable").GetInt64()))]
                    : []);
        }

        ReplicaView? replica = null;
        if (root.TryGetProperty("replica", out var r))
        {
            replica = new ReplicaView(
                r.GetProperty("connected").GetBoolean(),
                r.GetProperty("primaryId").GetString(),
                [.. r.GetProperty("topics").EnumerateArray().Select(t => new ReplicaTopic(t.GetProperty("topic").GetString()!, t.GetProperty("first").GetInt64(), t.GetProperty("next").GetInt64(), t.GetProperty("durable").GetInt64()))],
                [.. r.GetProperty("truncations").EnumerateArray().Select(t => t.GetString()!)]);
        }

        return new NodeStatus(
            root.GetProperty("nodeId").GetString()!,
            root.GetProperty("role").GetString()!,
            root.GetProperty("epoch").GetInt64(),
            standby,
            replica,
            [.. root.GetProperty("events").EnumerateArray().Select(e => e.GetString()!)],
            json);
    }

    public override string ToString() => Json;

    /// <summary>
    /// The primary's view of its standby (<see cref="Attached"/>: a link accepted; <see cref="Confirming"/>: the standby
    /// welcomed, the replication gate counts it; <see cref="RetentionPassed"/>: links ended because retention passed it;
    /// <see cref="Degraded"/>: standby-mode publishes confirmed as local; <see cref="WitnessRecordsBehind"/>: the witness
    /// keeps the lease from the standby because it lacks some of them).
    /// </summary>
    public sealed record StandbyView(bool Attached, bool Confirming, long AcksReceived, long JournalerAcks, long RetentionPassed, long Degraded, bool WitnessRecordsBehind, IReadOnlyList<StandbyTopic> Topics);

    /// <summary>One topic as the primary sees it replicated: its head and the standby's received and durable ends.</summary>
    public sealed record StandbyTopic(string Topic, long Head, long Received, long Durable);

    /// <summary>The standby's copy.</summary>
    public sealed record ReplicaView(bool Connected, string? PrimaryId, IReadOnlyList<ReplicaTopic> Topics, IReadOnlyList<string> Truncations);

    /// <summary>One topic of the standby's copy: its first and next offsets and its flushed end.</summary>
    public sealed record ReplicaTopic(string Topic, long First, long Next, long Durable);
}
