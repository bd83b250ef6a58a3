using FastBroker.Engine;
using FastBroker.Testing;

namespace FastBroker.BrokerTests;

public class ReplicatorStageTests
{
    [Fact]
    public async Task The_replicator_sees_every_message_in_ring_order_and_confirmations_wait_for_it()
    {
        using var dir = new TempDirectory();
        var replicator = new GatedReplicator();
        await using var broker = Broker.Open(BrokerFixture.Options(dir.Path), replicator);

        var first = broker.PublishAsync("replicated", BrokerFixture.Utf8("a")).AsTask();

        // The journal has the message (the journaler runs in parallel with the replicator) ...
        Eventually.True(() => broker.GetSnapshot().Topics.Any(t => t.Name == "replicated" && t.Head == 1), "journaled");
        Eventually.True(() => replicator.Blocked, "the replicator holds the message");

        // ... but the producer is not confirmed while the replicator stage has not passed it.
        Assert.False(first.IsCompleted, "confirmed before the replicator stage passed the message");
        replicator.Release();
        Assert.Equal(0, await Eventually.Completes(first));

        for (var i = 1; i < 100; i++)
        {
            Assert.Equal(i, await broker.PublishAsync("replicated", BrokerFixture.Utf8($"m{i}")));
        }

        Assert.Equal(Enumerable.Range(0, 100).Select(i => (long)i), replicator.Sequences);
    }

    private sealed class GatedReplicator : IReplicator
    {
        private readonly ManualResetEventSlim _gate = new(false);
        private volatile bool _blocked;

        public List<long> Sequences { get; } = [];

        public bool Blocked => _blocked;

        public void Release() => _gate.Set();

        public void OnPublished(PublishEntry entry, long sequence, bool endOfBatch)
        {
            Sequences.Add(sequence);
            if (!_gate.IsSet)
            {
                _blocked = true;
                _gate.Wait(TimeSpan.FromMinutes(1));
            }
        }
    }
}
