using System.Collections.Concurrent;
using FastBroker.Engine;
using FastBroker.Replication;
using FastBroker.Testing;
using static FastBroker.ReplicationTests.Failover.IdempotentPublishes;

namespace FastBroker.ReplicationTests.Failover;

/// <summary>
/// A standby receives the primary's <c>producers.state</c> whole at each attach and at heartbeats while its journal copy
/// may still be catching up, so the file can name a producer's newest and previous records beyond the copy's end. If the
/// primary dies then, the promoted standby must still refuse a retry of a record its copy holds (here: stored before
/// the rescan of the newest records), never store it a second time. The standby's copy of the topic is held back by
/// ending its link at every RECORDS frame past offset 110 (<c>StandbyReplica.RecordsArriving</c>); the rescan of the
/// newest records is cut to 64.
/// </summary>
public sealed class ProducerCheckpointAheadFailoverTests
{
    private const string Topic = "t";
    private const int Later = 9_000; // Busy's records after the copy's end: more than a capture interval

    private static readonly TimeSpan s_deadline = TimeSpan.FromSeconds(60);

    [Fact]
    public Task A_standby_promoted_while_its_copy_trails_the_producers_state_it_received_refuses_a_retry_of_a_record_it_holds() =>
        HeldBehindAsync(async (dir, a, b, log) =>
        {
            await FailOverAsync(a, b);
            Assert.Equal(110L, b.Broker!.GetSnapshot().Topics.Single(t => t.Name == Topic).Head);
            var after = new Sink();
            Publish(b.Broker, after, Topic, Early, 5, token: 1);  // stored at offset 5, which b holds, beyond the rescan of its newest records
            Publish(b.Broker, after, Topic, Early, 10, token: 2); // lost with the failover (b never had it): stored once
            await Eventually.TrueAsync(() => after.Count == 2, "both retries are answered", s_deadline);
            var outcomes = after.Outcomes.OrderBy(o => o.Token).ToList();
            Assert.True((outcomes[0].Offset, outcomes[0].Duplicate, outcomes[0].Error) == (5L, true, BrokerErrorCode.None),
                $"the retry of Early's sequence 5, stored at offset 5 of b's copy, after b was promoted holding a's producers.state that names Early's 10 beyond its copy's end: "
                + $"{outcomes[0].Error} offset {outcomes[0].Offset} duplicate {outcomes[0].Duplicate}; b's log: [{string.Join(" | ", log.Where(l => l.Contains(ProducerCheckpoint.FileName, StringComparison.Ordinal)))}]");
            Assert.Equal((110L, false, BrokerErrorCode.None), (outcomes[1].Offset, outcomes[1].Duplicate, outcomes[1].Error));
        });

    /// <summary>
    /// The standby keeps its copy of <c>producers.state</c> while its journal copy is behind the primary's file (so a
    /// promotion opens with entries its journals hold, rescanning from points they reach), and installs the file once
    /// the copy reaches its capture points.
    /// </summary>
    [Fact]
    public Task A_standby_installs_a_producers_state_ahead_of_its_copy_once_its_copy_reaches_it() =>
        HeldBehindAsync(async (dir, a, b, _) =>
        {
            var copy = Path.Combine(dir.Combine("b"), ProducerCheckpoint.FileName);
            Assert.False(ProducerCheckpointFile.NamesAt(copy, Early, 10), "b's producers.state names Early's sequence 10 (offset 110), which its copy of t (ending at 110) lacks");

            b.Replica!.RecordsArriving = null;
            await Eventually.TrueAsync(() => NodeStatus.Parse(a.GetStatusJson()).StandbyCaughtUp(Topic), "b catches up", s_deadline);
            await Eventually.TrueAsync(() => ProducerCheckpointFile.NamesAt(copy, Early, 10), "b's producers.state names Early's sequence 10 once its copy holds it", s_deadline);
        });

    /// <summary>
    /// Starts a pair in a fresh directory, holds b's copy behind (<see cref="HoldBehindAsync"/>), then runs
    /// <paramref name="then"/> with the directory, both nodes and their log, before the pair is disposed.
    /// </summary>
    private static async Task HeldBehindAsync(Func<TempDirectory, ReplicatedNode, ReplicatedNode, ConcurrentQueue<string>, Task> then)
    {
        using var dir = new TempDirectory();
        var log = new ConcurrentQueue<string>();
        var (a, b) = await InProcessPair.StartAsync(dir, Options(log));
        await using (a)
        await using (b)
        {
            await HoldBehindAsync(dir, a, b);
            await then(dir, a, b, log);
        }
    }

    private static BrokerOptions Options(ConcurrentQueue<string> log) =>
        BrokerOptions.Default with { ProducerRecoveryRecords = 64, AllowSmallProducerRescan = true, Log = log.Enqueue };

    /// <summary>
    /// Early's 0..9 and Busy's 0..99 on a, held by b; then b's copy of t held at 110 while a stores Early's 10 (offset
    /// 110) and <see cref="Later"/> of Busy's, and b has received a's producers.state naming Early's 10.
    /// </summary>
    private static async Task HoldBehindAsync(TempDirectory dir, ReplicatedNode a, ReplicatedNode b)
    {
        var sink = new Sink();
        PublishEarlyThenBusy(a.Broker!, sink, Topic, 100); // Early's 0..9 out of the 64-record rescan
        await Eventually.TrueAsync(() => sink.Count == 110, "every publish is confirmed", s_deadline);
        await Eventually.TrueAsync(() => NodeStatus.Parse(a.GetStatusJson()).StandbyCaughtUp(Topic), "b holds the topic durably", s_deadline);

        // From here b's copy of t ends at 110: every RECORDS frame of t ends its link, unwritten.
        var replica = b.Replica!;
        replica.RecordsArriving = (topic, first, _) =>
        {
            if (topic == Topic)
            {
                throw new InvalidDataException($"held by the test: records of '{topic}' from {first}");
            }
        };

        Publish(a.Broker!, sink, Topic, Early, 10); // offset 110
        PublishRun(a.Broker!, sink, Topic, Busy, 100, 100 + Later);
        await Eventually.TrueAsync(() => sink.Count == 111 + Later, "every publish is confirmed (local acks)", s_deadline);
        var primaryCheckpoint = Path.Combine(dir.Combine("a"), ProducerCheckpoint.FileName);
        await Eventually.TrueAsync(() => ProducerCheckpointFile.NamesAt(primaryCheckpoint, Early, 10), "a's producers.state names Early at its sequence 10", s_deadline);

        // An attach welcomed from now on is sent a's producers.state as it is now (the welcome comes before b's
        // digests, which a reads before it sends the state files, all before the records that end the link): once
        // a second one is welcomed, the first one's link applied it and ended at t's records.
        var welcomes = replica.Welcomes;
        await Eventually.TrueAsync(() => replica.Welcomes >= welcomes + 2, "b attached twice more (each link ended at t's records)", s_deadline);
        Assert.Equal(110L, replica.JournalOf(Topic)!.NextOffset);
    }
}
