using System.Collections.Concurrent;
using FastBroker.Testing;

namespace FastBroker.BrokerTests;

/// <summary>
/// Damage that no intact record follows in its segment, and retention deleting a damaged segment: consumers are told of
/// the damage once and go on at the next record they can read, whatever segment it is in.
/// </summary>
public class DamagedSegmentEndTests
{
    /// <summary>
    /// The records from the middle of a sealed segment to its end are damaged: a work-queue group dead-letters each one
    /// and delivers the next segment's records. Before, the seek past the first damaged record found nothing to land on
    /// in its segment and threw, and the group's feed waited at it for ever ("the feed cannot go past …; it waits there"),
    /// holding its floor and the topic's retention.
    /// </summary>
    [Fact]
    public async Task A_work_queue_group_goes_past_damage_that_runs_to_its_segments_end_to_the_next_segment()
    {
        var log = new ConcurrentQueue<string>();
        await using var f = await BrokerFixture.StartAsync(o => o with { Log = log.Enqueue });
        var damaged = (await DamagedTopics.CreateAsync(f, "rot", log, count => Enumerable.Range(count / 2, count - (count / 2)))).Select(d => d.Offset).ToHashSet();
        Assert.True(damaged.Count > 100, $"{damaged.Count} damaged");

        using var member = f.Broker.JoinGroup("rot", "workers", GroupOptions.Default with { Start = StartPosition.Earliest }, prefetch: 256);
        var seen = DamagedTopics.DeliverAll(member, log, DamagedTopics.Records - damaged.Count);
        Assert.Equal(Enumerable.Range(0, DamagedTopics.Records).Select(i => (long)i).Where(o => !damaged.Contains(o)), seen.Order());
        Eventually.True(() => f.Broker.GetSnapshot().Groups.Single().AckFloor == DamagedTopics.Records, "the group's ack floor passes the damage");
        Eventually.True(() => f.Broker.GetSnapshot().Groups.Single().DeadLettered == damaged.Count, "every damaged offset is dead-lettered");
        Assert.Contains(log, l => l.Contains($"{damaged.Max()} dead-lettered to 'rot.dlq' unread (damaged record); the group goes on at offset {damaged.Max() + 1}", StringComparison.Ordinal));
    }

    /// <summary>
    /// Retention (by age) deletes the segment holding a damaged record while subscribers are positioned before it, one
    /// in an earlier segment and one right before the damaged record: neither ever meets it; each goes on at the first
    /// retained record and counts what it lost in Missed, and the topic reports no damage met.
    /// </summary>
    [Fact]
    public async Task Retention_deleting_a_damaged_segment_lets_subscribers_before_it_go_on_at_the_next_retained_record()
    {
        var log = new ConcurrentQueue<string>();
        await using var f = await BrokerFixture.StartAsync(o => o with { Log = log.Enqueue });
        var options = TopicOptions.Default with { SegmentBytes = 64 << 10, MaxMessageBytes = 16 << 10, RetentionAge = TimeSpan.FromHours(1) };
        var victim = (await DamagedTopics.CreateAsync(f, "rot", log, _ => [5], options)).Single();
        Assert.True(f.Broker.Topics.TryGet("rot", out var topic));
        var journal = topic.Journal!;
        var damagedSegment = victim.Segment;

        using var early = f.Broker.Subscribe("rot", new SubscriptionOptions { Start = StartPosition.Earliest });
        using var close = f.Broker.Subscribe("rot", new SubscriptionOptions { Start = StartPosition.Earliest });
        var (earlyGot, closeGot) = (new Collected(), new Collected());
        var (earlyR, closeR) = (new Recorder(earlyGot), new Recorder(closeGot));
        Eventually.True(() => early.Fetch(10 - earlyGot.Items.Count, ref earlyR) >= 0 && earlyGot.Items.Count == 10, "10 messages of the first segment");
        Eventually.True(() => close.Fetch((int)victim.Offset - closeGot.Items.Count, ref closeR) >= 0 && closeGot.Items.Count == victim.Offset, "every message before the damaged one");
        Assert.Equal(victim.Offset, close.Positions["rot"]);

        // An hour on, every sealed segment is past the age limit: the damaged one goes with the others.
        Eventually.True(() =>
        {
            journal.ApplyRetention(DateTimeOffset.UtcNow.AddHours(2));
            return !File.Exists(damagedSegment);
        }, "retention deletes the damaged segment");
        var retained = journal.FirstOffset;
        Assert.True(retained > victim.Offset, $"first retained offset {retained}, the damaged one {victim.Offset}");

        foreach (var (name, sub, got, from) in new[] { ("early", early, earlyGot, 10L), ("close", close, closeGot, victim.Offset) })
        {
            got.Items.Clear();
            var r = new Recorder(got);
            Eventually.True(() =>
            {
                try
                {
                    sub.Fetch(1000, ref r);
                }
                catch (BrokerException e)
                {
                    Assert.Fail($"{name}: {e.Code} after retention deleted the damaged segment: {e.Message}");
                }

                return got.Items.Count == DamagedTopics.Records - retained;
            }, $"{name}: the rest, from the first retained message");
            Assert.Equal(Enumerable.Range((int)retained, DamagedTopics.Records - (int)retained).Select(i => (long)i), got.Items.Select(m => m.Offset));
            Assert.Equal(retained - from, sub.Missed);
        }

        var snapshot = f.Broker.GetSnapshot().Topics.Single(t => t.Name == "rot");
        Assert.Equal((0L, -1L), (snapshot.DamagedRecords, snapshot.FirstDamagedOffset));
        Assert.DoesNotContain(log, l => l.Contains("is damaged", StringComparison.Ordinal));
    }
}
