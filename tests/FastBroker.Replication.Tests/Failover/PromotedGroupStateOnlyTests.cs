using System.Collections.Concurrent;
using FastBroker.Engine;
using FastBroker.Testing;

namespace FastBroker.ReplicationTests.Failover;

/// <summary>
/// A work-queue group's state reaches the standby apart from the stream (at an attach, before the topics are
/// announced), so a standby can hold a topic's <c>groups/</c> and no <c>topic.meta</c>: the topic's creation never
/// reached it. Promoted then, the node has no such topic, and the group state is a leftover that no topic owns: the
/// promoted broker opens, removes the directory and says so, and a topic created later under that name starts its
/// groups anew. Before, the directory was left as it was ("holds what no topic creation makes"), and a topic created
/// under its name took it over: the group started at the dead primary's ack floor, in the middle of the new topic.
/// Two in-process nodes on 127.0.0.1, no witness, manual promotion; b's copy of the topic is kept from being created
/// (<see cref="Replication.Internal.StandbyReplica.FileStep"/> throws at its settings' write, as a primary dying
/// before its announcement reached b would leave it), while the attaches still bring the group state.
/// </summary>
public sealed class PromotedGroupStateOnlyTests
{
    private const string Jobs = "jobs.groupsonly";
    private const int Acked = 6;
    private static readonly TimeSpan s_deadline = TimeSpan.FromSeconds(30);

    [Fact]
    public async Task A_promoted_standby_removes_group_state_of_a_topic_it_never_had_and_the_topic_created_later_starts_its_group_anew()
    {
        using var dir = new TempDirectory();
        var lines = new ConcurrentQueue<string>();
        var brokerOptions = BrokerOptions.Default with { Log = lines.Enqueue };
        var (a, b) = await InProcessPair.StartAsync(dir, brokerOptions, o => o with { HeartbeatTimeout = TimeSpan.FromSeconds(10), Log = lines.Enqueue });
        await using var primaryNode = a;
        await using var standbyNode = b;
        var copy = Path.Combine(dir.Combine("b"), "topics", Jobs);

        // b reports the standby role before its standby loop has opened its copy (the replica the hook goes on): a
        // loaded machine may not have run that loop yet when the pair is started.
        await Eventually.TrueAsync(() => b.Replica is not null, "b opens its standby copy", s_deadline);
        b.Replica!.FileStep = step =>
        {
            if (step.StartsWith("write ", StringComparison.Ordinal) && step.Contains(copy, StringComparison.Ordinal))
            {
                throw new IOException($"test: b's copy of {Jobs} is not created");
            }
        };

        // On a: the topic, ten messages, a group that acked the first six.
        a.Broker!.CreateTopic(Jobs, TopicOptions.Default);
        for (var i = 0; i < 10; i++)
        {
            await a.Broker.PublishAsync(Jobs, new byte[16]);
        }

        using (var member = a.Broker.JoinGroup(Jobs, "workers", prefetch: Acked))
        using (var cts = new CancellationTokenSource(s_deadline))
        {
            var read = 0;
            await foreach (var m in member.ReadAllAsync(cts.Token))
            {
                Assert.True(member.Ack(m.Offset, m.DeliveryCount));
                if (++read == Acked)
                {
                    break;
                }
            }
        }

        var state = Path.Combine(copy, "groups", "workers.state");
        if (!Eventually.TryWait(() => GroupAckStore.ReadFloor(state) == Acked, s_deadline))
        {
            Assert.Fail($"b does not hold the group's state (ack floor {Acked}) {s_deadline.TotalSeconds} s after the acks: {GroupAckStore.ReadFloor(state)?.ToString() ?? "absent"}\n{string.Join('\n', lines)}");
        }

        Assert.False(File.Exists(Path.Combine(copy, TopicRegistry.MetaFile)), "b created its copy of the topic (the test's step did not stop it)");

        // a is gone for good, before its topic's creation reached b: b, promoted by hand, opens without the topic.
        await a.DisposeAsync();
        await b.PromoteAsync().WaitAsync(s_deadline);
        await Eventually.TrueAsync(() => b.Role == Replication.NodeRole.Primary && b.Broker is not null, "b serves as primary", s_deadline);
        var broker = b.Broker!;
        Assert.False(broker.Topics.TryGet(Jobs, out _), $"the promoted b opened {Jobs}, whose creation never reached it");
        var wrong = new List<string>();
        if (Directory.Exists(copy))
        {
            wrong.Add($"the promoted b kept '{copy}', which holds only a group's state and no topic owns: [{string.Join(", ", Directory.GetFileSystemEntries(copy, "*", SearchOption.AllDirectories))}]");
        }
        else if (!lines.Any(l => l.Contains($"removed '{copy}'", StringComparison.Ordinal) && l.Contains("'workers'", StringComparison.Ordinal)))
        {
            wrong.Add($"no line says the promoted b removed '{copy}' and the group 'workers' in it");
        }

        // Created again on b, with other settings: a new topic whose group starts at its start, not at a's ack floor.
        broker.CreateTopic(Jobs, TopicOptions.Default with { SegmentBytes = 1 << 20, MaxMessageBytes = 4096 });
        for (var i = 0; i < 10; i++)
        {
            await broker.PublishAsync(Jobs, new byte[16]);
        }

        using var joined = broker.JoinGroup(Jobs, "workers", prefetch: 1);
        using var wait = new CancellationTokenSource(s_deadline);
        await using var messages = joined.ReadAllAsync(wait.Token).GetAsyncEnumerator(wait.Token);
        Assert.True(await messages.MoveNextAsync(), "the group of the new topic delivers nothing");
        if (messages.Current.Offset != 0)
        {
            wrong.Add($"the group 'workers' of the topic {Jobs} created on the promoted b starts at offset {messages.Current.Offset}, a's ack floor of the old topic, not at the new topic's first message (0)");
        }

        Assert.True(wrong.Count == 0, string.Join("; ", wrong) + "\n" + string.Join('\n', lines));
    }
}
