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
        var brokerOptions = BrokerOptions.Default with { ProducerRecoveryRecords = 64 };
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

    private static void Publish(Broker broker, IPublishConfirmSink sink, ulong producer, ulong sequence)
    {
        Assert.True(broker.TryBeginPublish(1, out var claim));
        claim.Add(Encoding.UTF8.GetBytes(Topic), default, default, new ReadOnlySequence<byte>(Encoding.UTF8.GetBytes($"{producer:x}-{sequence}")), new PublishParameters(ProducerId: producer, ProducerSequence: sequence), sink, sequence);
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
