using System.Collections.Concurrent;
using System.Text;
using System.Text.Json;
using FastBroker.Replication;
using FastBroker.Server;
using FastBroker.Testing;

namespace FastBroker.ReplicationTests.Failover;

/// <summary>
/// A primary whose journal holds a damaged record in a sealed segment (a payload byte flipped while it was stopped, its
/// open trusting sealed segments, so a reader finds it) cannot send the standby that record or any after it. The link
/// stays up: that topic's stream stops before the damage, said once in the primary's log and in both nodes' /status,
/// the other topics go on, and a standby-mode publish to the damaged topic is not confirmed (the gate's timeout rules).
/// Before, the sender ended the link at the damage on every attempt and the standby reconnected at once, forever.
/// Two in-process nodes on 127.0.0.1, no witness; "a" is stopped and started again on its damaged data directory.
/// </summary>
public sealed class PrimaryDamageTests
{
    private const string Topic = "primarydamage.rot";
    private const string Healthy = "primarydamage.ok";
    private const int Count = 2000;

    /// <summary>Heartbeats of one link, at 100 ms each: long enough for a reconnect storm to show many times over.</summary>
    private const int Rounds = 20;

    private static readonly TimeSpan s_deadline = TimeSpan.FromSeconds(60);

    [Fact]
    public async Task A_damaged_record_on_the_primary_stops_that_topic_s_stream_once_and_the_link_stays_up()
    {
        using var dir = new TempDirectory();
        var linesA = new ConcurrentQueue<string>();
        var linesB = new ConcurrentQueue<string>();
        int portA = FreePort.Next(), portB = FreePort.Next();
        ReplicationOptions Node(string id, int port, int peer, NodeRole role, ConcurrentQueue<string> lines, bool alone = false) => new()
        {
            DegradeToLocal = alone, // a's first run, without a standby, confirms as local
            NodeId = id,
            DataDirectory = dir.Combine(id),
            Port = port,
            Peer = $"127.0.0.1:{peer}",
            InitialRole = role,
            AckTimeout = TimeSpan.FromSeconds(2), // only the unconfirmed publish waits it out
            Log = lines.Enqueue,
        };
        var trusting = BrokerOptions.Default with { VerifySealedSegmentsOnOpen = false };
        var server = ServerOptions.Default with { Port = 0 };
        var topicOptions = TopicOptions.Default with { SegmentBytes = 64 << 10, MaxMessageBytes = 16 << 10, Acks = AckMode.StandbyReceived };

        var a = await ReplicatedNode.StartAsync(trusting, server, Node("a", portA, portB, NodeRole.Primary, linesA, alone: true));
        try
        {
            Assert.True(await a.WaitForRoleAsync(NodeRole.Primary, TimeSpan.FromSeconds(30)), "a becomes primary");
            a.Broker!.CreateTopic(Topic, topicOptions);
            for (var i = 0; i < Count; i++)
            {
                await a.Broker.PublishAsync(Topic, Encoding.UTF8.GetBytes($"b{i}:").Concat(new byte[100]).ToArray());
            }
        }
        finally
        {
            await a.DisposeAsync();
        }

        var (segment, victim, _) = RecordDamage.FlipPayloadByte(Path.Combine(dir.Combine("a"), "topics", Topic, "journal"), segmentIndex: 1, recordIndex: 5);
        a = await ReplicatedNode.StartAsync(trusting, server, Node("a", portA, portB, NodeRole.Primary, linesA));
        await using var _ = a;
        Assert.True(await a.WaitForRoleAsync(NodeRole.Primary, TimeSpan.FromSeconds(30)), "a becomes primary again");
        await using var b = await ReplicatedNode.StartAsync(BrokerOptions.Default, server, Node("b", portB, portA, NodeRole.Standby, linesB));

        // b reports the damage, or keeps reconnecting: which comes first.
        string? Reported() => ReplicaTopic(b, Topic) is { } t && t.TryGetProperty("primaryDamagedAt", out var at) ? $"{at.GetInt64()}" : null;
        await Eventually.TrueAsync(() => Reported() is not null || b.LinkAttempts >= Rounds, $"b reports the primary's damage or reconnects {Rounds} times", s_deadline);
        Assert.True(
            Reported() is not null,
            $"b reconnected {b.LinkAttempts} times and does not report the damage; a logged {linesA.Count} lines, b {linesB.Count}; a's log (distinct lines): {Distinct(linesA)}; b's: {Distinct(linesB)}");
        Assert.Equal($"{victim}", Reported());

        // The link stays up for Rounds heartbeats: b does not reconnect, a does not log the damage again.
        var link = a.Replicator!.Link!;
        var attempts = b.LinkAttempts;
        var beats = link.HeartbeatsSent;
        await Eventually.TrueAsync(() => link.HeartbeatsSent >= beats + Rounds, $"{Rounds} heartbeats on the link", s_deadline);
        Assert.Same(link, a.Replicator!.Link);
        Assert.Equal(attempts, b.LinkAttempts);
        var damageLines = linesA.Where(l => l.Contains($"topic '{Topic}'", StringComparison.Ordinal) && l.Contains("damaged", StringComparison.Ordinal)).ToArray();
        Assert.True(
            damageLines.Length == 1 && damageLines[0].Contains(segment, StringComparison.Ordinal) && damageLines[0].Contains($"offset {victim}", StringComparison.Ordinal),
            $"a logged the damage (offset {victim} in {segment}) {damageLines.Length} times: [{string.Join(" | ", damageLines)}]");
        Assert.DoesNotContain(linesB, l => l.Contains("link down", StringComparison.Ordinal));

        // b holds the topic up to the damaged record; a's /status names the topic, the offset and the segment.
        Assert.Equal(victim, b.Replica!.JournalOf(Topic)!.NextOffset);
        using (var status = JsonDocument.Parse(a.GetStatusJson()))
        {
            var damaged = Assert.Single(status.RootElement.GetProperty("standby").GetProperty("damaged").EnumerateArray());
            Assert.Equal(Topic, damaged.GetProperty("topic").GetString());
            Assert.Equal(victim, damaged.GetProperty("offset").GetInt64());
            Assert.Equal(segment, damaged.GetProperty("segment").GetString());
        }

        // Another topic replicates on the same link; a standby-mode publish past the damage is not confirmed.
        a.Broker!.CreateTopic(Healthy, topicOptions);
        await a.Broker.PublishAsync(Healthy, "fine"u8.ToArray());
        Assert.Equal(1, b.Replica!.JournalOf(Healthy)!.NextOffset);
        var refused = await Assert.ThrowsAsync<BrokerException>(async () => await a.Broker.PublishAsync(Topic, "past the damage"u8.ToArray()));
        Assert.Equal(BrokerErrorCode.NotReplicated, refused.Code);
        Assert.Same(link, a.Replicator!.Link);
    }

    private static JsonElement? ReplicaTopic(ReplicatedNode node, string topic)
    {
        using var status = JsonDocument.Parse(node.GetStatusJson());
        if (!status.RootElement.TryGetProperty("replica", out var replica))
        {
            return null;
        }

        foreach (var t in replica.GetProperty("topics").EnumerateArray())
        {
            if (t.GetProperty("topic").GetString() == topic)
            {
                return t.Clone();
            }
        }

        return null;
    }

    private static string Distinct(ConcurrentQueue<string> lines) =>
        string.Join(" | ", lines.Select(l => l.Length > 13 ? l[13..] : l).Distinct().TakeLast(8));
}
