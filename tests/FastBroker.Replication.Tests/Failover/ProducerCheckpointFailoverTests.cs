using System.Buffers;
using System.Collections.Concurrent;
using System.Text;
using FastBroker.Engine;
using FastBroker.Replication;
using FastBroker.Testing;

namespace FastBroker.ReplicationTests.Failover;

/// <summary>
/// The idempotent producers' checkpoint (<c>producers.state</c>) travels to the standby with the other state files, so
/// a promoted standby knows a producer whose records other producers pushed out of its rescan of each topic's newest
/// records: that producer's retry of a stored message is refused, not stored twice. The rescan is cut to 64 records.
/// Producer epochs travel with the records and in that file, so the promoted standby also keeps fencing a replaced instance.
/// </summary>
[Collection(nameof(FailoverCollection))]
public sealed class ProducerCheckpointFailoverTests
{
    private const string Topic = "t";
    private const ulong Early = 0x0E0E_0E0E_0E0E_0E07;
    private const ulong Busy = 0x0B0B_0B0B_0B0B_0B08;
    private const int Others = 20_000;

    [Fact]
    public async Task A_promoted_standby_still_deduplicates_a_producer_pushed_out_of_its_rescan()
    {
        using var dir = new TempDirectory();
        var brokerOptions = BrokerOptions.Default with { ProducerRecoveryRecords = 64, AllowSmallProducerRescan = true };
        var (a, b) = await InProcessPair.StartAsync(dir, brokerOptions);
        await using (a)
        await using (b)
        {
            var sink = new Sink();
            for (var i = 0UL; i < 10; i++)
            {
                Publish(a.Broker!, sink, Early, i);
            }

            for (var i = 0UL; i < Others; i++)
            {
                Publish(a.Broker!, sink, Busy, i);
            }

            await Eventually.TrueAsync(() => sink.Count == 10 + Others, "every publish is confirmed", TimeSpan.FromSeconds(60));
            await Eventually.TrueAsync(() => NodeStatus.Parse(a.GetStatusJson()).StandbyCaughtUp(Topic), "b holds the topic durably", TimeSpan.FromSeconds(60));
            await Eventually.TrueAsync(() => ProducerCheckpointFile.Names(Path.Combine(dir.Combine("b"), ProducerCheckpoint.FileName), Early), "b holds a checkpoint naming the early producer", TimeSpan.FromSeconds(60));
            await a.DisposeAsync();

            // b's copy is the same creation of the topic as a's (producers.state's capture points name a's).
            var creation = TopicRegistry.IncarnationOf(File.ReadAllText(Path.Combine(dir.Combine("a"), "topics", Topic, TopicRegistry.MetaFile)));
            Assert.NotEqual(0UL, creation);
            Assert.Equal(creation, TopicRegistry.IncarnationOf(File.ReadAllText(Path.Combine(dir.Combine("b"), "topics", Topic, TopicRegistry.MetaFile))));
            await b.PromoteAsync();
            Assert.Equal(NodeRole.Primary, b.Role);
            Assert.Equal(10UL, b.Broker!.NextProducerSequence(Early));
            var after = new Sink();
            Publish(b.Broker, after, Early, 5);  // stored at offset 5, far beyond the rescan: refused
            Publish(b.Broker, after, Early, 10); // new
            await Eventually.TrueAsync(() => after.Count == 2, "both retries are answered", TimeSpan.FromSeconds(60));
            var outcomes = after.Outcomes.OrderBy(o => o.Token).ToList();
            Assert.Equal((5UL, BrokerErrorCode.InvalidArgument), (outcomes[0].Token, outcomes[0].Error));
            Assert.Equal((10UL, 10L + Others, BrokerErrorCode.None), (outcomes[1].Token, outcomes[1].Offset, outcomes[1].Error));
        }
    }

    /// <summary>
    /// Producer epochs travel in the records' producer headers: a promoted standby still fences the instance a newer
    /// one replaced on the old primary, and still takes the newer one's retry for a duplicate.
    /// </summary>
    [Fact]
    public async Task A_promoted_standby_keeps_fencing_an_instance_a_newer_one_replaced()
    {
        using var dir = new TempDirectory();
        var (a, b) = await InProcessPair.StartAsync(dir, BrokerOptions.Default);
        await using (a)
        await using (b)
        {
            var sink = new Sink();
            var old = await StartOldInstanceAsync(a.Broker!, sink);
            var (next, current) = a.Broker!.InitProducer(Early);
            Assert.Equal(1UL, next);
            Publish(a.Broker, sink, Early, 1, current, token: 1);
            await Eventually.TrueAsync(() => sink.Count == 2, "the new instance's message is confirmed", TimeSpan.FromSeconds(60));
            Assert.All(sink.Outcomes, o => Assert.Equal(BrokerErrorCode.None, o.Error));
            await Eventually.TrueAsync(() => NodeStatus.Parse(a.GetStatusJson()).StandbyCaughtUp(Topic), "b holds the topic durably", TimeSpan.FromSeconds(60));
            await FailOverFencingAsync(a, b, old);
            var after = new Sink();
            Publish(b.Broker!, after, Early, 2, old, token: 2);     // the replaced instance goes on: fenced
            Publish(b.Broker!, after, Early, 1, current, token: 3); // the new one's retry: a duplicate
            await Eventually.TrueAsync(() => after.Count == 2, "both are answered", TimeSpan.FromSeconds(60));
            var outcomes = after.Outcomes.OrderBy(o => o.Token).ToList();
            Assert.Equal((2UL, BrokerErrorCode.ProducerFenced), (outcomes[0].Token, outcomes[0].Error));
            Assert.Equal((3UL, 1L, BrokerErrorCode.None), (outcomes[1].Token, outcomes[1].Offset, outcomes[1].Error));
        }
    }

    /// <summary>
    /// A new instance's epoch is in <c>producers.epochs</c> from the moment it is given, and that file reaches the standby
    /// (sent whole when it changes, checked every heartbeat): once it has, a promoted standby fences the instance it
    /// replaced although the new one never wrote (no record carries its epoch).
    /// </summary>
    [Fact]
    public async Task A_promoted_standby_fences_an_instance_replaced_by_one_that_never_wrote()
    {
        using var dir = new TempDirectory();
        var (a, b) = await InProcessPair.StartAsync(dir, BrokerOptions.Default);
        await using (a)
        await using (b)
        {
            var sink = new Sink();
            var old = await StartOldInstanceAsync(a.Broker!, sink);
            Assert.Equal(BrokerErrorCode.None, sink.Outcomes.Single().Error);
            var (next, current) = a.Broker!.InitProducer(Early);
            Assert.Equal(1UL, next);
            await Eventually.TrueAsync(() => NodeStatus.Parse(a.GetStatusJson()).StandbyCaughtUp(Topic), "b holds the topic durably", TimeSpan.FromSeconds(60));
            await Eventually.TrueAsync(() => ProducerCheckpointFile.Holds(Path.Combine(dir.Combine("b"), ProducerCheckpointFile.EpochsName), current), "b's producers.epochs holds the new epoch", TimeSpan.FromSeconds(60));
            await FailOverFencingAsync(a, b, old);
            var after = new Sink();
            Publish(b.Broker!, after, Early, 1, old, token: 1); // the replaced instance goes on: fenced
            await Eventually.TrueAsync(() => after.Count == 1, "the old instance's publish is answered", TimeSpan.FromSeconds(60));
            Assert.Equal(BrokerErrorCode.ProducerFenced, after.Outcomes.Single().Error);
            Assert.Equal((1UL, current), b.Broker!.InitProducer(Early, current)); // the new one resumes
            Publish(b.Broker!, after, Early, 1, current, token: 2);
            await Eventually.TrueAsync(() => after.Count == 2, "the new instance's publish is answered", TimeSpan.FromSeconds(60));
            Assert.Equal((2UL, 1L, BrokerErrorCode.None), after.Outcomes.Single(o => o.Token == 2));
        }
    }

    /// <summary>
    /// Each new version of <c>producers.epochs</c> reaches the attached standby, also one as long as the last one sent (a
    /// newer epoch in place of the older one of the same id): the file ends with its own CRC32C, so a change check by
    /// CRC32C and length took every such version for the one already sent.
    /// </summary>
    [Fact]
    public async Task A_new_epoch_in_place_of_one_the_standby_already_holds_reaches_it_too()
    {
        using var dir = new TempDirectory();
        var (a, b) = await InProcessPair.StartAsync(dir, BrokerOptions.Default);
        await using (a)
        await using (b)
        {
            var checkpoint = Path.Combine(dir.Combine("b"), ProducerCheckpointFile.EpochsName);
            var (_, old) = a.Broker!.InitProducer(Early);
            await Eventually.TrueAsync(() => ProducerCheckpointFile.Holds(checkpoint, old), "b's producers.epochs holds the first epoch", TimeSpan.FromSeconds(30));
            var (_, current) = a.Broker!.InitProducer(Early);
            await Eventually.TrueAsync(() => ProducerCheckpointFile.Holds(checkpoint, current), $"b's producers.epochs holds the epoch {current} that replaced {old} (a file of the same length)", TimeSpan.FromSeconds(30));
        }
    }

    /// <summary>Starts an instance of <see cref="Early"/> on <paramref name="broker"/> and has its first message confirmed: its epoch.</summary>
    private static async Task<ulong> StartOldInstanceAsync(Broker broker, Sink sink)
    {
        var (_, old) = broker.InitProducer(Early);
        Publish(broker, sink, Early, 0, old, token: 0);
        await Eventually.TrueAsync(() => sink.Count == 1, "the old instance's message is confirmed", TimeSpan.FromSeconds(60));
        return old;
    }

    /// <summary>Stops <paramref name="a"/> and promotes <paramref name="b"/>, which must then refuse to resume <paramref name="old"/>.</summary>
    private static async Task FailOverFencingAsync(ReplicatedNode a, ReplicatedNode b, ulong old)
    {
        await a.DisposeAsync();
        await b.PromoteAsync();
        Assert.Equal(NodeRole.Primary, b.Role);
        Assert.Equal(BrokerErrorCode.ProducerFenced, Assert.Throws<BrokerException>(() => b.Broker!.InitProducer(Early, old)).Code);
    }

    private static void Publish(Broker broker, IPublishConfirmSink sink, ulong producer, ulong sequence, ulong epoch = 0, ulong? token = null)
    {
        PublishClaim claim;
        while (!broker.TryBeginPublish(1, out claim))
        {
            // 20,000 publishes outrun the 16,384-entry input ring when a loaded machine slows the journaler: wait for room.
            Assert.True(broker.WaitForPublishRoomAsync(1).AsTask().Wait(TimeSpan.FromSeconds(30)), "room in the input ring within 30 s");
        }

        claim.Add(Encoding.UTF8.GetBytes(Topic), default, default, new ReadOnlySequence<byte>(Encoding.UTF8.GetBytes($"{producer:x}-{sequence}")), new PublishParameters(ProducerId: producer, ProducerSequence: sequence, ProducerEpoch: epoch), sink, token ?? sequence);
        claim.Commit();
    }

    private sealed class Sink : IPublishConfirmSink
    {
        public ConcurrentQueue<(ulong Token, long Offset, BrokerErrorCode Error)> Outcomes { get; } = new();

        public int Count => Outcomes.Count;

        public void OnPublishConfirmed(ulong token, long offset, bool duplicate) => Outcomes.Enqueue((token, offset, BrokerErrorCode.None));

        public void OnPublishFailed(ulong token, BrokerErrorCode code, string reason) => Outcomes.Enqueue((token, -1, code));
    }
}
