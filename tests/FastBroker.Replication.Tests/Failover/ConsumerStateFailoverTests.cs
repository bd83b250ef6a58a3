using System.Diagnostics;
using System.Text.Json;
using FastBroker.Client;
using FastBroker.Engine;
using FastBroker.Protocol;
using FastBroker.Testing;
using Xunit.Abstractions;

namespace FastBroker.ReplicationTests.Failover;

/// <summary>
/// Consumer state handed from the old primary to the promoted standby and then owned by the promoted node alone: the
/// standby's copies of the position files (<c>subscriptions/*.pos</c>, written by its replica while it followed) and of
/// the group state files become the files the promoted broker opens and commits to, with no second writer left. A
/// commit on the old primary resumes the consumer on the promoted node; a commit on the promoted node, not the
/// replicated one before it, is what a restart of that node resumes from.
/// </summary>
[Collection(nameof(PairProcessCollection))]
public sealed class ConsumerStateFailoverTests(ITestOutputHelper output)
{
    // A 2 s heartbeat timeout: a standby stalled that long by a loaded machine would be detached, and a commit (or a
    // publish) confirmed as local meanwhile would not be on it. The kills close the link at once; nothing waits on it.
    private static readonly string[] s_options = ["--acks", "standby-durable", "--degrade-to-local", "--heartbeat-timeout-ms", "2000"];

    [Fact]
    public async Task Durable_subscriptions_resume_on_the_promoted_node_and_its_own_commits_survive_its_restart()
    {
        const string topic = "ledger";
        await using var pair = new PairHarness();
        try
        {
            var (a, b, before) = await pair.StartConfiguredPairAsync(s_options, s_options, proxied: true);
            await PublishAsync(a.ClientEndpoint, topic, "m", 200);

            await using (var consumer = await ConnectAsync(a))
            {
                await using var sub = await consumer.CreateSubscriptionAsync(topic, Durable("keeper"));
                await CommitAfterAsync(sub, 49); // answered once b applied it (standby-durable): b's replica maps its copy

                // The link cut: b lets go of its copies, attaches again and replaces its copy of keeper.pos with the
                // file a sends whole to a standby that attaches (a rename), so the commit after it reaches the new one.
                var followed = Followed(b);
                pair.ToA!.CutAll();
                await Eventually.TrueAsync(
                    () => Followed(b) > followed && LiveMappings(b, "keeper.pos") == 0 && a.TryStatusAsync().GetAwaiter().GetResult() is { Standby: { Attached: true, AcksReceived: > 0 } } s && s.StandbyCaughtUp(topic),
                    "b attaches again, with no mapping of keeper.pos left");
                await CommitAfterAsync(sub, 99);
                a.Kill();
            }

            var (status, body) = await b.PromoteAsync();
            Assert.True(status == 200, $"POST /promote: {status} {body}");
            await b.WaitForAsync(s => s.IsPrimary && s.Epoch > before.Epoch, "b is primary");

            await using (var consumer = await ConnectAsync(b))
            {
                await using var keeper = await consumer.CreateSubscriptionAsync(topic, Durable("keeper"));
                var first = await ReadAsync(keeper);
                var (keeperMaps, keeperMapsDeleted) = (LiveMappings(b, "keeper.pos"), DeletedMappings(b, "keeper.pos"));
                output.WriteLine($"keeper committed 100 on a, resumed at {first.Offset} on the promoted b; b maps keeper.pos {keeperMaps} time(s) (+{keeperMapsDeleted} replaced)");
                Assert.Equal(100, first.Offset);
                Assert.Equal((1, 0), (keeperMaps, keeperMapsDeleted)); // the broker's store only: the replica's are closed
                await CommitAfterAsync(keeper, 149, first);

                await using var fresh = await consumer.CreateSubscriptionAsync(topic, Durable("fresh"));
                await CommitAfterAsync(fresh, 29);
                Assert.Equal(1, LiveMappings(b, "fresh.pos"));
            }

            b.Kill();
            await b.StartAsync();
            await b.WaitForAsync(s => s.IsPrimary, "b is primary again after its restart");
            await using (var consumer = await ConnectAsync(b))
            {
                await using var keeper = await consumer.CreateSubscriptionAsync(topic, Durable("keeper"));
                await using var fresh = await consumer.CreateSubscriptionAsync(topic, Durable("fresh"));
                var (k, f) = (await ReadAsync(keeper), await ReadAsync(fresh));
                output.WriteLine($"after b's restart: keeper (150 committed on b, 100 replicated from a) resumed at {k.Offset}; fresh (30 committed on b) at {f.Offset}");
                Assert.Equal(150, k.Offset);
                Assert.Equal(30, f.Offset);
            }
        }
        catch
        {
            output.WriteLine(pair.Logs);
            throw;
        }
    }

    [Fact]
    public async Task A_work_queue_group_resumes_on_the_promoted_node_and_its_own_acks_survive_its_restart()
    {
        const string topic = "jobs";
        await using var pair = new PairHarness();
        try
        {
            var (a, b, before) = await pair.StartConfiguredPairAsync(s_options, s_options);
            await PublishAsync(a.ClientEndpoint, topic, "j", 200);

            await using (var consumer = await ConnectAsync(a))
            {
                await using var member = await consumer.JoinGroupAsync(topic, "workers", GroupJoinOptions.Default with { Prefetch = 50 });
                await AckRangeAsync(member, 0, 50);

                // Group state goes to the standby whole, at most every 20 ms and not waited for: wait for b's copy.
                var copy = Path.Combine(b.DataDirectory, "topics", topic, "groups", "workers.state");
                await Eventually.TrueAsync(() => GroupAckStore.ReadFloor(copy) == 50, "b's copy of the group state has floor 50");
                a.Kill();
            }

            var (status, body) = await b.PromoteAsync();
            Assert.True(status == 200, $"POST /promote: {status} {body}");
            await b.WaitForAsync(s => s.IsPrimary && s.Epoch > before.Epoch, "b is primary");

            await using (var consumer = await ConnectAsync(b))
            {
                await using var member = await consumer.JoinGroupAsync(topic, "workers", GroupJoinOptions.Default with { Prefetch = 50 });
                await AckRangeAsync(member, 50, 100);
                await WaitForAckFloorAsync(consumer, topic, "workers", 100);
            }

            b.Kill();
            await b.StartAsync();
            await b.WaitForAsync(s => s.IsPrimary, "b is primary again after its restart");
            await using (var consumer = await ConnectAsync(b))
            {
                await using var member = await consumer.JoinGroupAsync(topic, "workers", GroupJoinOptions.Default with { Prefetch = 50 });
                var first = await ReadAsync(member);
                output.WriteLine($"after b's restart (acks up to 100 on b, up to 50 replicated from a): first delivery {first.Offset}");
                Assert.Equal(100, first.Offset);
            }
        }
        catch
        {
            output.WriteLine(pair.Logs);
            throw;
        }
    }

    /// <summary>
    /// A standby that (re)attaches gets every position file whole before the records it lacks, so until it has caught
    /// up it may hold a committed position beyond the end of its copy. Promoted then, its new messages take the
    /// offsets its copy lacked; the subscription must resume at the first of them, not at the position it was sent.
    /// </summary>
    [Fact]
    public async Task A_position_ahead_of_the_promoted_copy_does_not_skip_the_messages_published_after_the_promotion()
    {
        const string topic = "feed";
        const int backlog = 1024;
        await using var pair = new PairHarness();
        try
        {
            string[] options = ["--heartbeat-timeout-ms", "2000"];
            var (a, b, before) = await pair.StartConfiguredPairAsync(options, options, proxied: true);
            await PublishAsync(a.ClientEndpoint, topic, "m", 1);
            await b.WaitForAsync(s => s.ReplicaOf(topic) is { Durable: 1 }, "b holds the topic's first message");
            b.Kill();

            // While b is down: a backlog of 8 MiB, read and committed on a (local acks: nothing waits for b).
            await PublishAsync(a.ClientEndpoint, topic, "m", backlog, from: 1, size: 8 << 10);
            await using (var consumer = await ConnectAsync(a))
            {
                await using var sub = await consumer.CreateSubscriptionAsync(topic, Durable("tracker"));
                await CommitAfterAsync(sub, backlog);
            }

            // b rejoins; its link forwards the welcome and the state files whole (tracker.pos is 264 KiB), then only the
            // first records of the backlog.
            pair.ToA!.ServerBytesPerConnection = 1 << 20;
            await b.StartAsync();
            await Eventually.TrueAsync(() => File.Exists(Path.Combine(b.DataDirectory, "subscriptions", "tracker.pos")), "b receives tracker.pos");
            a.Kill();
            var (status, body) = await b.PromoteAsync();
            Assert.True(status == 200, $"POST /promote: {status} {body}");
            var promoted = await b.WaitForAsync(s => s.IsPrimary && s.Epoch > before.Epoch, "b is primary");

            await using (var consumer = await ConnectAsync(b))
            {
                long head;
                using (var stats = JsonDocument.Parse(await consumer.AdminAsync(AdminQuery.TopicStats, topic)))
                {
                    head = stats.RootElement.GetProperty("topic").GetProperty("head").GetInt64();
                }

                Assert.True(head <= backlog, $"b's copy ends at {head}: it should lack the end of the backlog (committed {backlog + 1} on a)");

                // Producers move over first: new messages at the offsets b lacked, and past the position a committed.
                var count = (int)(backlog + 1 - head) + 10;
                await PublishAsync(b.ClientEndpoint, topic, "n", count);
                await using var sub = await consumer.CreateSubscriptionAsync(topic, Durable("tracker"));
                var first = await ReadAsync(sub);
                output.WriteLine($"b promoted with its copy ending at {head}, tracker committed {backlog + 1} on a; {count} published on b; tracker resumed at {first.Offset} ('{first.GetPayloadString().TrimEnd('\0')}')");
                Assert.Equal(head, first.Offset);
                Assert.StartsWith("n0000", first.GetPayloadString(), StringComparison.Ordinal);
                Assert.Contains(promoted.Events, e => e.Contains($"subscription 'tracker': its committed position {backlog + 1} was ahead of the journal, which ends at offset {head}", StringComparison.Ordinal));
            }
        }
        catch
        {
            output.WriteLine(pair.Logs);
            throw;
        }
    }

    private static SubscribeOptions Durable(string name) =>
        SubscribeOptions.Default with { DurableName = name, Start = SubscribeStart.Committed(FastBroker.Protocol.StartKind.Earliest) };

    private static ValueTask<BrokerClient> ConnectAsync(NodeProcess node) =>
        BrokerClient.ConnectAsync(BrokerClientOptions.Default with { Endpoints = [node.ClientEndpoint], Reconnect = false });

    private static async Task PublishAsync(string endpoint, string topic, string prefix, int count, int from = 0, int size = 64)
    {
        await using var producer = await BrokerClient.ConnectAsync(BrokerClientOptions.Default with { Endpoints = [endpoint], Reconnect = false });
        for (var i = from; i < from + count; i += 64)
        {
            await Task.WhenAll(Enumerable.Range(i, Math.Min(64, from + count - i)).Select(n => producer.PublishAsync(topic, Payloads.Padded($"{prefix}{n:D4}", size)).AsTask()));
        }
    }

    private static async Task<ClientMessage> ReadAsync(ClientSubscription sub)
    {
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        return await sub.ReadAsync(timeout.Token);
    }

    private static async Task<ClientMessage> ReadAsync(GroupMember member)
    {
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        return await member.ReadAsync(timeout.Token);
    }

    /// <summary>Reads up to offset <paramref name="last"/> (from <paramref name="first"/> if already read) and commits after it; returns once answered.</summary>
    private static async Task CommitAfterAsync(ClientSubscription sub, long last, ClientMessage? first = null)
    {
        var m = first ?? await ReadAsync(sub);
        while (m.Offset < last)
        {
            m = await ReadAsync(sub);
        }

        Assert.Equal(last, m.Offset);
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        await sub.CommitAsync(m, timeout.Token);
    }

    /// <summary>Takes the deliveries of offsets [<paramref name="from"/>, <paramref name="to"/>) and acks each; none below it may come.</summary>
    private static async Task AckRangeAsync(GroupMember member, long from, long to)
    {
        var acked = new HashSet<long>();
        while (acked.Count < to - from)
        {
            var m = await ReadAsync(member);
            Assert.True(m.Offset >= from, $"delivered offset {m.Offset}, acked before (expected {from} or later)");
            if (m.Offset < to && acked.Add(m.Offset))
            {
                await member.AckAsync(m);
            }
        }
    }

    /// <summary>Polls the broker's group (admin LIST_GROUPS) until its ack floor is <paramref name="floor"/>: the acks, sent without an answer, are taken.</summary>
    private static async Task WaitForAckFloorAsync(BrokerClient client, string topic, string group, long floor)
    {
        var sw = Stopwatch.StartNew();
        long seen;
        while (true)
        {
            using (var doc = JsonDocument.Parse(await client.AdminAsync(AdminQuery.ListGroups, topic)))
            {
                seen = doc.RootElement.GetProperty("groups").EnumerateArray().Single(g => g.GetProperty("group").GetString() == group).GetProperty("ackFloor").GetInt64();
            }

            if (seen == floor)
            {
                return;
            }

            Assert.True(sw.Elapsed < Eventually.DefaultTimeout, $"group '{group}': ack floor {seen}, expected {floor}");
            await Task.Delay(20); // polling interval of a condition with a deadline
        }
    }

    /// <summary>How many times the node's log says it began to follow a (each attach of its replica).</summary>
    private static int Followed(NodeProcess node) =>
        node.Logs.Split('\n').Count(line => line.Contains("replication: following primary 'a'", StringComparison.Ordinal));

    /// <summary>How many mappings of a file named <paramref name="fileName"/> the node's process holds (/proc/pid/maps), of files still in place.</summary>
    private static int LiveMappings(NodeProcess node, string fileName) =>
        Mappings(node, fileName).Count(line => !line.EndsWith(" (deleted)", StringComparison.Ordinal));

    /// <summary>How many mappings of a file named <paramref name="fileName"/> the node's process holds of files since replaced or removed.</summary>
    private static int DeletedMappings(NodeProcess node, string fileName) =>
        Mappings(node, fileName).Count(line => line.EndsWith(" (deleted)", StringComparison.Ordinal));

    private static IEnumerable<string> Mappings(NodeProcess node, string fileName) =>
        File.ReadAllLines($"/proc/{node.Pid}/maps").Where(line => line.Contains("/subscriptions/" + fileName, StringComparison.Ordinal));
}
