using System.Text;
using FastBroker.Testing;

namespace FastBroker.ReplicationTests.Failover;

/// <summary>
/// A standby-received confirmation waits for the standby's ACK one round trip after the journaler shipped the records;
/// the journaler polls for that ACK itself (<see cref="FastBroker.Replication.ReplicationOptions.AckPoll"/>) instead of
/// leaving it to the ack reader, whose wake-up would add to every such confirmation. Two in-process nodes, no witness.
/// </summary>
public sealed class JournalerAckPollTests
{
    private const string Topic = "orders.polled";

    [Theory]
    [InlineData(1000)]
    [InlineData(0)]
    public async Task The_journaler_reads_the_standbys_ack_only_when_polling_is_on(int ackPollMs)
    {
        using var dir = new TempDirectory();
        var brokerOptions = BrokerOptions.Default with { DefaultTopicOptions = TopicOptions.Default with { Acks = AckMode.StandbyReceived } };
        var (a, b) = await InProcessPair.StartAsync(dir, brokerOptions, o => o with { AckPoll = TimeSpan.FromMilliseconds(ackPollMs), AckReaderDefersFor = TimeSpan.FromMilliseconds(200), AckTimeout = TimeSpan.FromSeconds(30) });
        await using var primaryNode = a;
        await using var standbyNode = b;

        // One publish at a time: each confirmation waits for its own ACK. The journaler polls for up to 1 s; the ack
        // reader, which would otherwise win or lose that race by scheduling alone (a CI machine let it win all 200),
        // leaves arrived frames to a polling journaler for up to 200 ms (a test-only hook). The counter says who read
        // each ACK; with polling off the reader reads them all, deferral or not.
        const int Messages = 200;
        for (var i = 0; i < Messages; i++)
        {
            var offset = await a.Broker!.PublishAsync(Topic, Encoding.UTF8.GetBytes($"m{i}"));
            Assert.Equal(i, offset);
        }

        var status = NodeStatus.Parse(a.GetStatusJson());
        Assert.True(status.Standby is { Attached: true }, status.Json);
        Assert.True(status.Standby.Topics.Single(t => t.Topic == Topic).Received >= Messages, status.Json);
        if (ackPollMs > 0)
        {
            Assert.True(status.Standby.JournalerAcks > 0, $"the journaler read none of the ACKs: {status.Json}");
        }
        else
        {
            Assert.Equal(0, status.Standby.JournalerAcks);
        }

        Assert.True(status.Standby.JournalerAcks <= status.Standby.AcksReceived, status.Json);
        await Eventually.TrueAsync(() => NodeStatus.Parse(a.GetStatusJson()).StandbyCaughtUp(Topic), "b flushes the topic (readers see flushed records)");
        using var reader = b.Replica!.JournalOf(Topic)!.OpenReader(FastBroker.Journal.ReadStart.Beginning);
        for (var i = 0; i < Messages; i++)
        {
            Assert.True(reader.TryRead(out var record), $"the standby holds record {i}");
            Assert.Equal($"m{i}", Encoding.UTF8.GetString(record.Payload));
        }
    }
}
