using FastBroker.Engine;
using FastBroker.Replication;
using FastBroker.Testing;
using static FastBroker.ReplicationTests.Failover.IdempotentPublishes;

namespace FastBroker.ReplicationTests.Failover;

/// <summary>
/// The idempotent producers' checkpoint (<c>producers.state</c>) travels to the standby with the other state files, so
/// a promoted standby knows a producer whose records other producers pushed out of its rescan of each topic's newest
/// records: that producer's retry of a stored message is refused, not stored twice. The rescan is cut to 64 records.
/// Producer epochs travel with the records and in that file, so the promoted standby also keeps fencing a replaced instance.
/// </summary>
public sealed class ProducerCheckpointFailoverTests
{
    private const string Topic = "t";
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
            PublishEarlyThenBusy(a.Broker!, sink, Topic, Others);
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
            Publish(b.Broker, after, Topic, Early, 5);  // stored at offset 5, far beyond the rescan: refused
            Publish(b.Broker, after, Topic, Early, 10); // new
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
    public Task A_promoted_standby_keeps_fencing_an_instance_a_newer_one_replaced() =>
        ReplacedInstanceAsync(async (_, a, b, sink, old, current) =>
        {
            Publish(a.Broker!, sink, Topic, Early, 1, current, token: 1);
            await Eventually.TrueAsync(() => sink.Count == 2, "the new instance's message is confirmed", TimeSpan.FromSeconds(60));
            Assert.All(sink.Outcomes, o => Assert.Equal(BrokerErrorCode.None, o.Error));
            await Eventually.TrueAsync(() => NodeStatus.Parse(a.GetStatusJson()).StandbyCaughtUp(Topic), "b holds the topic durably", TimeSpan.FromSeconds(60));
            await FailOverFencingAsync(a, b, old);
            var after = new Sink();
            Publish(b.Broker!, after, Topic, Early, 2, old, token: 2);     // the replaced instance goes on: fenced
            Publish(b.Broker!, after, Topic, Early, 1, current, token: 3); // the new one's retry: a duplicate
            await Eventually.TrueAsync(() => after.Count == 2, "both are answered", TimeSpan.FromSeconds(60));
            var outcomes = after.Outcomes.OrderBy(o => o.Token).ToList();
            Assert.Equal((2UL, BrokerErrorCode.ProducerFenced), (outcomes[0].Token, outcomes[0].Error));
            Assert.Equal((3UL, 1L, BrokerErrorCode.None), (outcomes[1].Token, outcomes[1].Offset, outcomes[1].Error));
        });

    /// <summary>
    /// A new instance's epoch is in <c>producers.epochs</c> from the moment it is given, and that file reaches the standby
    /// (sent whole when it changes, checked every heartbeat): once it has, a promoted standby fences the instance it
    /// replaced although the new one never wrote (no record carries its epoch).
    /// </summary>
    [Fact]
    public Task A_promoted_standby_fences_an_instance_replaced_by_one_that_never_wrote() =>
        ReplacedInstanceAsync(async (dir, a, b, sink, old, current) =>
        {
            Assert.Equal(BrokerErrorCode.None, sink.Outcomes.Single().Error);
            await Eventually.TrueAsync(() => NodeStatus.Parse(a.GetStatusJson()).StandbyCaughtUp(Topic), "b holds the topic durably", TimeSpan.FromSeconds(60));
            await Eventually.TrueAsync(() => ProducerCheckpointFile.Holds(Path.Combine(dir.Combine("b"), ProducerCheckpointFile.EpochsName), current), "b's producers.epochs holds the new epoch", TimeSpan.FromSeconds(60));
            await FailOverFencingAsync(a, b, old);
            var after = new Sink();
            Publish(b.Broker!, after, Topic, Early, 1, old, token: 1); // the replaced instance goes on: fenced
            await Eventually.TrueAsync(() => after.Count == 1, "the old instance's publish is answered", TimeSpan.FromSeconds(60));
            Assert.Equal(BrokerErrorCode.ProducerFenced, after.Outcomes.Single().Error);
            Assert.Equal((1UL, current), b.Broker!.InitProducer(Early, current)); // the new one resumes
            Publish(b.Broker!, after, Topic, Early, 1, current, token: 2);
            await Eventually.TrueAsync(() => after.Count == 2, "the new instance's publish is answered", TimeSpan.FromSeconds(60));
            Assert.Equal((2UL, 1L, BrokerErrorCode.None), after.Outcomes.Where(o => o.Token == 2).Select(o => (o.Token, o.Offset, o.Error)).Single());
        });

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

    /// <summary>
    /// Starts a pair, replaces an instance of <see cref="Early"/> on a (<see cref="ReplaceInstanceAsync"/>), then runs
    /// <paramref name="then"/> with the directory, both nodes, the sink holding the old instance's answer and the old and
    /// the new epoch, before the pair is disposed.
    /// </summary>
    private static async Task ReplacedInstanceAsync(Func<TempDirectory, ReplicatedNode, ReplicatedNode, Sink, ulong, ulong, Task> then)
    {
        using var dir = new TempDirectory();
        var (a, b) = await InProcessPair.StartAsync(dir, BrokerOptions.Default);
        await using (a)
        await using (b)
        {
            var sink = new Sink();
            var (old, current) = await ReplaceInstanceAsync(a.Broker!, sink);
            await then(dir, a, b, sink, old, current);
        }
    }

    /// <summary>
    /// Starts an instance of <see cref="Early"/> on <paramref name="broker"/> and has its first message confirmed, then
    /// a new instance, which resumes at sequence 1: the old and the new epoch.
    /// </summary>
    private static async Task<(ulong Old, ulong Current)> ReplaceInstanceAsync(Broker broker, Sink sink)
    {
        var (_, old) = broker.InitProducer(Early);
        Publish(broker, sink, Topic, Early, 0, old, token: 0);
        await Eventually.TrueAsync(() => sink.Count == 1, "the old instance's message is confirmed", TimeSpan.FromSeconds(60));
        var (next, current) = broker.InitProducer(Early);
        Assert.Equal(1UL, next);
        return (old, current);
    }

    /// <summary>Stops <paramref name="a"/> and promotes <paramref name="b"/>, which must then refuse to resume <paramref name="old"/>.</summary>
    private static async Task FailOverFencingAsync(ReplicatedNode a, ReplicatedNode b, ulong old)
    {
        await FailOverAsync(a, b);
        Assert.Equal(BrokerErrorCode.ProducerFenced, Assert.Throws<BrokerException>(() => b.Broker!.InitProducer(Early, old)).Code);
    }
}
