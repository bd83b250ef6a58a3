using System.Collections.Concurrent;
using System.Diagnostics;
using System.Text;
using FastBroker.Replication;
using FastBroker.Replication.Internal;
using FastBroker.Testing;

namespace FastBroker.ReplicationTests.Failover;

/// <summary>
/// The journaler's ack poll (<see cref="ReplicationOptions.AckPoll"/>) and the ack reader share a link's frames under
/// its ack lock, and a link's end can be reported from either of them or the sender thread. A stress of both: short
/// standby-received publishes from several producers on two topics while the link through a proxy is cut again and
/// again (the standby attaches anew each time). Every publish completes within the ack timeout and a margin, confirmed
/// or failed with NotReplicated (no degrade to local), none otherwise; no ACK credits a topic after a newer link reset
/// its positions; no link ends on an invalid ACK of the real standby (its positions only go forward); and every
/// publish confirmed is in the standby's copy. Bounded: a fixed number of cuts, each waited for with a deadline.
/// </summary>
[Collection(nameof(FailoverCollection))]
public sealed class AckPollLinkChurnTests
{
    private const int Cuts = 6;
    private const int Producers = 4;
    private const int ConfirmedPerLink = 40;

    private static readonly TimeSpan s_ackTimeout = TimeSpan.FromSeconds(2);
    private static readonly TimeSpan s_publishDeadline = s_ackTimeout + TimeSpan.FromSeconds(30);
    private static readonly TimeSpan s_roundDeadline = TimeSpan.FromSeconds(60);

    [Fact]
    public async Task Confirmations_complete_and_only_their_own_link_credits_them_while_the_link_is_cut_again_and_again()
    {
        using var dir = new TempDirectory();
        TcpProxy? toA = null;
        var lines = new ConcurrentQueue<string>();
        var brokerOptions = BrokerOptions.Default with { DefaultTopicOptions = TopicOptions.Default with { Acks = AckMode.StandbyReceived } };
        var (a, b) = await InProcessPair.StartAsync(
            dir,
            brokerOptions,
            o => o with
            {
                AckPoll = TimeSpan.FromMilliseconds(1),
                AckTimeout = s_ackTimeout,
                Log = o.NodeId == "a" ? lines.Enqueue : null,
            },
            standbyPeer: port => (toA = new TcpProxy(port)).Endpoint);
        await using var proxy = toA!;
        await using var primary = a;
        await using var standby = b;

        // Which link last reset each topic's positions, and every credit made by another (an older) link after it.
        var resetBy = new ConcurrentDictionary<string, StandbyLink>(StringComparer.Ordinal);
        var links = new ConcurrentDictionary<StandbyLink, bool>();
        var stale = new ConcurrentQueue<string>();
        a.Replicator!.PositionsReset = (link, topic) =>
        {
            links[link] = true;
            resetBy[topic.Name] = link;
        };
        a.Replicator.AckCrediting = (link, topic) =>
        {
            if (resetBy.TryGetValue(topic.Name, out var newest) && !ReferenceEquals(newest, link))
            {
                stale.Enqueue($"topic '{topic.Name}': an ACK of an older link credited it after a newer link reset its positions");
            }
        };

        var confirmed = new ConcurrentQueue<(string Topic, long Offset, string Payload)>();
        var notReplicated = 0;
        var wrong = new ConcurrentQueue<string>();
        using var stop = new CancellationTokenSource();
        var producers = Enumerable.Range(0, Producers).Select(p => Task.Run(async () =>
        {
            var topic = $"churn.t{p % 2}";
            for (var i = 0; i < 100_000 && !stop.IsCancellationRequested; i++)
            {
                var payload = $"p{p}/{i}";
                try
                {
                    var offset = await a.Broker!.PublishAsync(topic, Encoding.UTF8.GetBytes(payload)).AsTask().WaitAsync(s_publishDeadline);
                    confirmed.Enqueue((topic, offset, payload));
                }
                catch (BrokerException e) when (e.Code == BrokerErrorCode.NotReplicated)
                {
                    Interlocked.Increment(ref notReplicated);
                }
                catch (TimeoutException)
                {
                    wrong.Enqueue($"{topic} {payload}: neither confirmed nor failed within {s_publishDeadline.TotalSeconds} s");
                    return;
                }
                catch (Exception e)
                {
                    wrong.Enqueue($"{topic} {payload}: {e}");
                    return;
                }
            }
        })).ToArray();

        try
        {
            for (var cut = 0; cut <= Cuts; cut++)
            {
                // A link that confirms: some publishes confirmed on it, then cut it (the last round only waits).
                var before = confirmed.Count;
                var round = Stopwatch.StartNew();
                while (!(NodeStatus.Parse(a.GetStatusJson()).StandbyConfirming && confirmed.Count >= before + ConfirmedPerLink))
                {
                    Assert.True(round.Elapsed < s_roundDeadline && wrong.IsEmpty, $"round {cut}: {ConfirmedPerLink} publishes confirmed on a new link within {s_roundDeadline.TotalSeconds} s ({confirmed.Count - before} were): [{string.Join(" | ", wrong)}] [{string.Join(" | ", lines)}]");
                    await Task.Delay(10);
                }

                if (cut < Cuts)
                {
                    proxy.CutAll();
                }
            }
        }
        finally
        {
            stop.Cancel();
            await Task.WhenAll(producers).WaitAsync(s_publishDeadline + s_publishDeadline);
        }

        Assert.True(wrong.IsEmpty, string.Join("\n", wrong));
        Assert.True(stale.IsEmpty, $"{stale.Count} credits by an older link: {stale.FirstOrDefault()}");
        Assert.DoesNotContain(lines, l => l.Contains("invalid ACK", StringComparison.Ordinal) || l.Contains("unexpected replication frame", StringComparison.Ordinal));
        Assert.True(links.Count >= Cuts + 1, $"{links.Count} links reset positions, expected {Cuts + 1} at least (the first before the hooks)");
        Assert.True(links.Keys.Sum(l => l.JournalerAcks) > 0, "the journaler read some of the ACKs (AckPoll)");

        // Every confirmed publish is in b's copy, at its offset.
        foreach (var group in confirmed.GroupBy(c => c.Topic))
        {
            var head = group.Max(c => c.Offset) + 1;
            // Durable: a reader reads up to the durable end (b flushes in the background every 100 ms).
            await Eventually.TrueAsync(() => b.Replica!.JournalOf(group.Key) is { } j && j.DurableOffset >= head, $"b holds '{group.Key}' durably up to {head}");
            using var reader = b.Replica!.JournalOf(group.Key)!.OpenReader(FastBroker.Journal.ReadStart.FromOffset(0));
            var held = new Dictionary<long, string>();
            while (reader.TryRead(out var record) && record.Offset < head)
            {
                held[record.Offset] = Encoding.UTF8.GetString(record.Payload);
            }

            Assert.True(held.Count > 0 && held.Keys.Max() == head - 1, $"b's reader of '{group.Key}' read up to {(held.Count == 0 ? "nothing" : held.Keys.Max())}, {head - 1} expected");
            foreach (var c in group)
            {
                Assert.True(held.TryGetValue(c.Offset, out var payload) && payload == c.Payload, $"'{c.Topic}' offset {c.Offset} confirmed as '{c.Payload}', b holds '{payload}'");
            }
        }
    }
}
