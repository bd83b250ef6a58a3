using FastBroker.Engine;
using FastBroker.Testing;

namespace FastBroker.BrokerTests;

/// <summary>
/// A broker with no idempotent producer still moves its <c>producers.state</c> capture points as it writes, so an open
/// after a crash rescans from a recent point (ProducerCheckpoint's capture points) instead of from where the broker last
/// opened: before, the journaler captured only while a producer was known, and a crash after millions of plain
/// publishes rescanned up to <see cref="ProducerCheckpoint.RescanLimit"/> records of each topic.
/// </summary>
public sealed class ProducerCheckpointIdleTests
{
    [Fact]
    public async Task A_broker_without_idempotent_producers_moves_its_capture_points_as_it_writes()
    {
        await using var f = await BrokerFixture.StartAsync();
        f.Broker.CreateTopic("plain", TopicOptions.Default);
        var payload = new byte[8];
        const int Count = ProducerRegistry.IdleCaptureInterval + 1000;
        for (var i = 0; i < Count;)
        {
            if (f.Broker.TryPublish("plain", payload))
            {
                i++;
            }
            else
            {
                Thread.Yield();
            }
        }

        await f.Broker.PublishAsync("plain", payload); // journaled after every one before it
        var checkpoint = Path.Combine(f.DataDirectory, ProducerCheckpoint.FileName);
        long? point = null;
        Eventually.True(
            () =>
            {
                ProducerCheckpoint.Load(f.DataDirectory, (_, _) => null, _ => null, out _, out _, out var capturedAt);
                point = capturedAt is not null && capturedAt.TryGetValue("plain", out var p) ? p.Next : null;
                return point >= ProducerRegistry.IdleCaptureInterval;
            },
            $"{checkpoint} captured past the first {ProducerRegistry.IdleCaptureInterval} records of 'plain'",
            TimeSpan.FromSeconds(30));
        Assert.True(point <= Count + 1, $"capture point {point} is past the journal's end");
    }
}
