using System.Collections.Concurrent;
using FastBroker.Engine;
using FastBroker.Testing;

namespace FastBroker.BrokerTests;

/// <summary>
/// A topic whose readers meet more damaged records than the 64 offsets it keeps to count each once: the count stops
/// there and says "at least", the lowest offset stays exact, and the log says once that later ones are not logged.
/// Before, the 65th and later were dropped without a word: the snapshot said 64 damaged records, as if that were all,
/// and nothing was logged for them.
/// </summary>
public class DamagedRecordCountTests
{
    [Fact]
    public async Task More_damaged_records_than_the_64_counted_make_the_count_say_at_least_and_are_logged_once()
    {
        const int Damaged = TopicState.MaxDamagedOffsetsKept + 6;
        var log = new ConcurrentQueue<string>();
        await using var f = await BrokerFixture.StartAsync(o => o with { Log = log.Enqueue });

        // Every other record from the second one of the segment: the group's reader meets each one itself.
        var damaged = (await DamagedTopics.CreateAsync(f, "rot", log, _ => Enumerable.Range(0, Damaged).Select(i => 1 + (2 * i)))).Select(d => d.Offset).ToList();
        using var member = f.Broker.JoinGroup("rot", "workers", GroupOptions.Default with { Start = StartPosition.Earliest }, prefetch: 256);
        var seen = 0;
        Eventually.True(() =>
        {
            var got = new Collected();
            var r = new Recorder(got);
            member.Fetch(256, ref r);
            foreach (var m in got.Items)
            {
                Assert.True(member.Ack(m.Offset, m.DeliveryCount));
            }

            seen += got.Items.Count;
            return seen == DamagedTopics.Records - Damaged;
        }, "the group delivers every intact record");
        Eventually.True(() => f.Broker.GetSnapshot().Groups.Single().DeadLettered == Damaged, $"the group dead-letters the {Damaged} damaged records");

        var topic = f.Broker.GetSnapshot().Topics.Single(t => t.Name == "rot");
        Assert.True(topic.DamagedRecordsAtLeast, $"the topic's snapshot says {topic.DamagedRecords} damaged records, as if that were all; its readers met {Damaged}");
        Assert.Equal(TopicState.MaxDamagedOffsetsKept, topic.DamagedRecords);
        Assert.Equal(damaged[0], topic.FirstDamagedOffset);
        Assert.Equal(TopicState.MaxDamagedOffsetsKept, log.Count(l => l.Contains("is damaged", StringComparison.Ordinal) && l.Contains("subscriptions reaching it end with DamagedRecord", StringComparison.Ordinal)));
        var more = Assert.Single(log, l => l.Contains($"more than {TopicState.MaxDamagedOffsetsKept} damaged records met", StringComparison.Ordinal));
        Assert.Contains($"the record at offset {damaged[TopicState.MaxDamagedOffsetsKept]} is damaged", more, StringComparison.Ordinal);
    }
}
