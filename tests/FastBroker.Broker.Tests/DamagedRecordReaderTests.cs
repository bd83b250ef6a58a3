using System.Collections.Concurrent;
using System.Text;
using FastBroker.Journal;
using FastBroker.Testing;

namespace FastBroker.BrokerTests;

/// <summary>
/// What consumers of the broker meet at a damaged record of a sealed segment a trusting open took on its seal (bit rot
/// while the broker was stopped): a <see cref="BrokerErrorCode.DamagedRecord"/> error naming the topic and the offset,
/// a way past it (a start after it reads the intact records that follow in the same segment), a work-queue group that
/// dead-letters it and goes on, and every other topic and subscriber unaffected.
/// </summary>
public class DamagedRecordReaderTests
{
    private const int Records = 2000;

    [Fact]
    public async Task A_subscription_meets_a_damaged_record_as_DamagedRecord_naming_topic_and_offset_and_a_start_after_it_reads_the_rest_of_the_segment()
    {
        var log = new ConcurrentQueue<string>();
        await using var f = await BrokerFixture.StartAsync(o => o with { Log = log.Enqueue });
        var victim = await DamagedTopicAsync(f, "rot", log);

        using var pulled = f.Broker.Subscribe("rot", new SubscriptionOptions { Start = StartPosition.Earliest });
        var got = new Collected();
        var recorder = new Recorder(got);
        var e = Assert.Throws<BrokerException>(() =>
        {
            var deadline = DateTime.UtcNow.AddSeconds(60);
            while (DateTime.UtcNow < deadline)
            {
                pulled.Fetch(1000, ref recorder);
            }
        });
        Assert.Equal(BrokerErrorCode.DamagedRecord, e.Code);
        Assert.Contains($"topic 'rot': the record at offset {victim.Offset} is damaged", e.Message, StringComparison.Ordinal);
        Assert.Contains($"subscribe from offset {victim.Offset + 1}", e.Message, StringComparison.Ordinal);
        var inner = Assert.IsType<JournalCorruptionException>(e.InnerException);
        Assert.Equal(victim.Segment, inner.FilePath);
        Assert.Equal(victim.Offset, inner.ExpectedOffset);
        Assert.Equal(victim.Offset, got.Items.Count);

        // Never skipped: the same record again; the topic reports it once whoever meets it how often.
        Assert.Equal(BrokerErrorCode.DamagedRecord, Assert.Throws<BrokerException>(() => pulled.Fetch(1000, ref recorder)).Code);
        Assert.Equal(victim.Offset, got.Items.Count);
        var topic = Assert.Single(f.Broker.GetSnapshot().Topics, t => t.Name == "rot");
        Assert.Equal(1, topic.DamagedRecords);
        Assert.Equal(victim.Offset, topic.FirstDamagedOffset);
        Assert.Single(log, l => l.Contains($"'rot': the record at offset {victim.Offset} is damaged", StringComparison.Ordinal));

        // Past it: a start at the next offset reads the intact records that follow it in the same segment, and on.
        using var after = f.Broker.Subscribe("rot", new SubscriptionOptions { Start = StartPosition.AtOffset(victim.Offset + 1) });
        var rest = Consume.Drain(after, Records - (int)victim.Offset - 1);
        Assert.Equal(Enumerable.Range((int)victim.Offset + 1, Records - (int)victim.Offset - 1).Select(i => (long)i), rest.Select(m => m.Offset));
        Assert.All(rest, m => Assert.StartsWith($"b{m.Offset}:", m.Payload, StringComparison.Ordinal));
    }

    [Fact]
    public async Task A_pattern_subscription_and_other_subscribers_go_on_past_a_damaged_topic()
    {
        await using var f = await BrokerFixture.StartAsync();
        f.Broker.CreateTopic("other.calm", TopicOptions.Default);
        var victim = await DamagedTopicAsync(f, "other.rot", new ConcurrentQueue<string>());

        // One subscription over both topics: the damaged one must not keep the other's messages from it.
        using var both = f.Broker.Subscribe("other.*", new SubscriptionOptions { Start = StartPosition.Earliest });
        using var calmOnly = f.Broker.Subscribe("other.calm", new SubscriptionOptions { Start = StartPosition.Earliest });
        var got = new Collected();
        var recorder = new Recorder(got);
        var damaged = 0;
        bool FetchBoth()
        {
            try
            {
                both.Fetch(1, ref recorder); // one at a time: a fetch that fills up on the calm topic never reaches the damaged one
            }
            catch (BrokerException e) when (e.Code == BrokerErrorCode.DamagedRecord)
            {
                damaged++;
            }

            return damaged > 0;
        }

        Eventually.True(FetchBoth, "the pattern subscription reaches the damaged record");

        // Published once the damage was met: they reach the same subscription and another one.
        for (var i = 0; i < 50; i++)
        {
            await f.Broker.PublishAsync("other.calm", BrokerFixture.Utf8($"c{i}"));
        }

        Eventually.True(() => FetchBoth() && got.Items.Count(m => m.Topic == "other.calm") == 50, "the pattern subscription gets the calm topic's 50 messages while the other topic is damaged");
        Assert.True(damaged >= 1);
        Assert.Equal(Enumerable.Range(0, (int)victim.Offset).Select(i => (long)i), got.Items.Where(m => m.Topic == "other.rot").Select(m => m.Offset));
        Assert.Equal(50, Consume.Drain(calmOnly, 50).Count);
    }

    [Fact]
    public async Task A_work_queue_group_dead_letters_a_damaged_record_with_its_reason_and_goes_on()
    {
        var log = new ConcurrentQueue<string>();
        await using var f = await BrokerFixture.StartAsync(o => o with { Log = log.Enqueue });
        var victim = await DamagedTopicAsync(f, "rot", log);

        using var dlq = f.Broker.Subscribe("rot.dlq", new SubscriptionOptions { Start = StartPosition.Earliest });
        using var member = f.Broker.JoinGroup("rot", "workers", GroupOptions.Default with { Start = StartPosition.Earliest }, prefetch: 64);
        var seen = new List<long>();
        Eventually.True(() =>
        {
            foreach (var m in Consume.FetchMany(member, 1, "a delivery"))
            {
                seen.Add(m.Offset);
                Assert.True(member.Ack(m.Offset, m.DeliveryCount));
                Assert.StartsWith($"b{m.Offset}:", m.Payload, StringComparison.Ordinal);
            }

            return seen.Count == Records - 1;
        }, "the group delivers every intact record, those after the damaged one included");
        Assert.DoesNotContain(victim.Offset, seen);

        Eventually.True(() => f.Broker.GetSnapshot().Groups.Single().AckFloor == Records, "the group's ack floor passes the damaged record");
        Message letter = null!;
        using var cancel = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        await foreach (var m in dlq.ReadAllAsync(cancel.Token))
        {
            letter = m;
            break;
        }

        Assert.Equal(0, letter.Payload.Length);
        Assert.Equal(victim.Offset, BitConverter.ToInt64(letter.Header("fb-dlq-offset")!));
        Assert.Equal(0, BitConverter.ToInt64(letter.Header("fb-dlq-deliveries")!));
        Assert.Equal("rot", letter.HeaderText("fb-dlq-topic"));
        Assert.Equal("workers", letter.HeaderText("fb-dlq-group"));
        Assert.Contains("damaged record", letter.HeaderText("fb-dlq-error"), StringComparison.Ordinal);
        Assert.Equal(1, f.Broker.GetSnapshot().Groups.Single().DeadLettered);
        Assert.Single(log, l => l.Contains($"'rot': the record at offset {victim.Offset} is damaged", StringComparison.Ordinal));
    }

    /// <summary>
    /// <see cref="Records"/> messages in topic <paramref name="name"/> over several 64 KiB segments, then a restart that
    /// trusts seals with record 5 of the second segment damaged.
    /// </summary>
    private static async Task<(string Segment, long Offset, long Position)> DamagedTopicAsync(BrokerFixture f, string name, ConcurrentQueue<string> log)
    {
        f.Broker.CreateTopic(name, TopicOptions.Default with { SegmentBytes = 64 << 10, MaxMessageBytes = 16 << 10 });
        for (var i = 0; i < Records; i++)
        {
            await f.Broker.PublishAsync(name, Encoding.UTF8.GetBytes($"b{i}:").Concat(new byte[100]).ToArray());
        }

        var journalDir = Path.Combine(f.DataDirectory, "topics", name, "journal");
        (string, long, long) victim = default;
        await f.RestartAsync(o => o with { VerifySealedSegmentsOnOpen = false, Log = log.Enqueue }, whileClosed: () => victim = RecordDamage.FlipPayloadByte(journalDir, 1, 5));
        return victim;
    }
}
