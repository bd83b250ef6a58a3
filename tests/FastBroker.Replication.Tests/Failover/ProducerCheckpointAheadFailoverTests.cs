using System.Buffers;
using System.Buffers.Binary;
using System.Collections.Concurrent;
using System.Text;
using FastBroker.Engine;
using FastBroker.Replication;
using FastBroker.Testing;

namespace FastBroker.ReplicationTests.Failover;

/// <summary>
/// A standby receives the primary's <c>producers.state</c> whole at each attach and at heartbeats while its journal copy
/// may still be catching up, so the file can name a producer's newest and previous records beyond the copy's end. If the
/// primary dies then, the promoted standby must still refuse a retry of a record its copy holds (here: stored before
/// the rescan of the newest records), never store it a second time. The standby's copy of the topic is held back by
/// ending its link at every RECORDS frame past offset 110 (<c>StandbyReplica.RecordsArriving</c>); the rescan of the
/// newest records is cut to 64.
/// </summary>
[Collection(nameof(FailoverCollection))]
public sealed class ProducerCheckpointAheadFailoverTests
{
    private const string Topic = "t";
    private const ulong Early = 0x0E0E_0E0E_0E0E_0E07;
    private const ulong Busy = 0x0B0B_0B0B_0B0B_0B08;
    private const int Later = 9_000; // Busy's records after the copy's end: more than a capture interval

    private static readonly TimeSpan s_deadline = TimeSpan.FromSeconds(60);

    [Fact]
    public async Task A_standby_promoted_while_its_copy_trails_the_producers_state_it_received_refuses_a_retry_of_a_record_it_holds()
    {
        using var dir = new TempDirectory();
        var log = new ConcurrentQueue<string>();
        var (a, b) = await InProcessPair.StartAsync(dir, Options(log));
        await using (a)
        await using (b)
        {
            await HoldBehindAsync(dir, a, b);
            await a.DisposeAsync();

            await b.PromoteAsync();
            Assert.Equal(NodeRole.Primary, b.Role);
            Assert.Equal(110L, b.Broker!.GetSnapshot().Topics.Single(t => t.Name == Topic).Head);
            var after = new Sink();
            Publish(b.Broker, after, Early, 5, token: 1);  // stored at offset 5, which b holds, beyond the rescan of its newest records
            Publish(b.Broker, after, Early, 10, token: 2); // lost with the failover (b never had it): stored once
            await Eventually.TrueAsync(() => after.Count == 2, "both retries are answered", s_deadline);
            var outcomes = after.Outcomes.OrderBy(o => o.Token).ToList();
            Assert.True((outcomes[0].Offset, outcomes[0].Duplicate, outcomes[0].Error) == (5L, true, BrokerErrorCode.None),
                $"the retry of Early's sequence 5, stored at offset 5 of b's copy, after b was promoted holding a's producers.state that names Early's 10 beyond its copy's end: "
                + $"{outcomes[0].Error} offset {outcomes[0].Offset} duplicate {outcomes[0].Duplicate}; b's log: [{string.Join(" | ", log.Where(l => l.Contains(ProducerCheckpoint.FileName, StringComparison.Ordinal)))}]");
            Assert.Equal((110L, false, BrokerErrorCode.None), (outcomes[1].Offset, outcomes[1].Duplicate, outcomes[1].Error));
        }
    }

    /// <summary>
    /// The standby keeps its copy of <c>producers.state</c> while its journal copy is behind the primary's file (so a
    /// promotion opens with entries its journals hold, rescanning from points they reach), and installs the file once
    /// the copy reaches its capture points.
    /// </summary>
    [Fact]
    public async Task A_standby_installs_a_producers_state_ahead_of_its_copy_once_its_copy_reaches_it()
    {
        using var dir = new TempDirectory();
        var log = new ConcurrentQueue<string>();
        var (a, b) = await InProcessPair.StartAsync(dir, Options(log));
        await using (a)
        await using (b)
        {
            await HoldBehindAsync(dir, a, b);
            var copy = Path.Combine(dir.Combine("b"), ProducerCheckpoint.FileName);
            Assert.False(NamesAt(copy, Early, 10), "b's producers.state names Early's sequence 10 (offset 110), which its copy of t (ending at 110) lacks");

            b.Replica!.RecordsArriving = null;
            await Eventually.TrueAsync(() => NodeStatus.Parse(a.GetStatusJson()).StandbyCaughtUp(Topic), "b catches up", s_deadline);
            await Eventually.TrueAsync(() => NamesAt(copy, Early, 10), "b's producers.state names Early's sequence 10 once its copy holds it", s_deadline);
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
        for (var i = 0UL; i < 10; i++)
        {
            Publish(a.Broker!, sink, Early, i);
        }

        for (var i = 0UL; i < 100; i++)
        {
            Publish(a.Broker!, sink, Busy, i); // Early's 0..9 out of the 64-record rescan
        }

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

        Publish(a.Broker!, sink, Early, 10); // offset 110
        for (var i = 100UL; i < 100 + Later; i++)
        {
            Publish(a.Broker!, sink, Busy, i);
        }

        await Eventually.TrueAsync(() => sink.Count == 111 + Later, "every publish is confirmed (local acks)", s_deadline);
        var primaryCheckpoint = Path.Combine(dir.Combine("a"), ProducerCheckpoint.FileName);
        await Eventually.TrueAsync(() => NamesAt(primaryCheckpoint, Early, 10), "a's producers.state names Early at its sequence 10", s_deadline);

        // An attach welcomed from now on is sent a's producers.state as it is now (the welcome comes before b's
        // digests, which a reads before it sends the state files, all before the records that end the link): once
        // a second one is welcomed, the first one's link applied it and ended at t's records.
        var welcomes = replica.Welcomes;
        await Eventually.TrueAsync(() => replica.Welcomes >= welcomes + 2, "b attached twice more (each link ended at t's records)", s_deadline);
        Assert.Equal(110L, replica.JournalOf(Topic)!.NextOffset);
    }

    /// <summary>Whether the checkpoint at <paramref name="path"/> has an entry of <paramref name="producer"/> whose highest sequence is <paramref name="sequence"/> (the id and the sequence side by side).</summary>
    private static bool NamesAt(string path, ulong producer, ulong sequence)
    {
        byte[] bytes;
        try
        {
            bytes = File.ReadAllBytes(path);
        }
        catch (IOException)
        {
            return false;
        }

        var entry = new byte[16];
        BinaryPrimitives.WriteUInt64LittleEndian(entry, producer);
        BinaryPrimitives.WriteUInt64LittleEndian(entry.AsSpan(8), sequence);
        return bytes.AsSpan().IndexOf(entry) >= 0;
    }

    private static void Publish(Broker broker, IPublishConfirmSink sink, ulong producer, ulong sequence, ulong? token = null)
    {
        PublishClaim claim;
        while (!broker.TryBeginPublish(1, out claim))
        {
            Assert.True(broker.WaitForPublishRoomAsync(1).AsTask().Wait(TimeSpan.FromSeconds(30)), "room in the input ring within 30 s");
        }

        claim.Add(Encoding.UTF8.GetBytes(Topic), default, default, new ReadOnlySequence<byte>(Encoding.UTF8.GetBytes($"{producer:x}-{sequence}")), new PublishParameters(ProducerId: producer, ProducerSequence: sequence), sink, token ?? sequence);
        claim.Commit();
    }

    private sealed class Sink : IPublishConfirmSink
    {
        public ConcurrentQueue<(ulong Token, long Offset, bool Duplicate, BrokerErrorCode Error)> Outcomes { get; } = new();

        public int Count => Outcomes.Count;

        public void OnPublishConfirmed(ulong token, long offset, bool duplicate) => Outcomes.Enqueue((token, offset, duplicate, BrokerErrorCode.None));

        public void OnPublishFailed(ulong token, BrokerErrorCode code, string reason) => Outcomes.Enqueue((token, -1, false, code));
    }
}
