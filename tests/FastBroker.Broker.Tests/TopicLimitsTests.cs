using FastBroker.Engine;
using FastBroker.Journal;
using FastBroker.Testing;

namespace FastBroker.BrokerTests;

/// <summary>
/// The upper bounds of a topic's sizes: a transient ring no larger than a broker can allocate, and a message limit
/// whose records fit in the journal segments the topic really gets (docs/broker.md, "Topic settings").
/// </summary>
public class TopicLimitsTests
{
    private static readonly TopicOptions s_base = TopicOptions.Default with { SegmentBytes = 1L << 20, MaxMessageBytes = 64 * 1024 };

    /// <summary>
    /// A transient capacity up to 2^30 passed Validate, and a transient topic allocates every slot when it is created
    /// (about 600 bytes each: 600 GiB at 2^30). Validate is called first so that, without the bound, the test fails
    /// instead of allocating the ring.
    /// </summary>
    [Theory]
    [InlineData(1 << 25)]
    [InlineData(1 << 30)]
    public async Task A_transient_capacity_past_2_to_the_24_is_refused_naming_TransientCapacity(int capacity)
    {
        var options = s_base with { Persistent = false, TransientCapacity = capacity };

        var refused = Assert.IsType<BrokerException>(Record.Exception(options.Validate));
        Assert.Equal(BrokerErrorCode.InvalidArgument, refused.Code);
        Assert.Contains($"TransientCapacity ({capacity}) must be a power of two from 1 to 16777216 (2^24)", refused.Message, StringComparison.Ordinal);

        await using var f = await BrokerFixture.StartAsync();
        Assert.Equal(BrokerErrorCode.InvalidArgument, Assert.Throws<BrokerException>(() => f.Broker.CreateTopic("ring", options)).Code);
        Assert.False(f.Broker.TopicExists("ring"));
    }

    [Fact]
    public void The_largest_transient_capacity_is_accepted()
    {
        (s_base with { Persistent = false, TransientCapacity = TopicOptions.MaxTransientCapacity }).Validate();
        Assert.Equal(1 << 24, TopicOptions.MaxTransientCapacity);
    }

    /// <summary>
    /// A topic.meta transientCapacity past the bound Validate keeps (2^24) was read up to 2^30; the file is read with the
    /// same bound and refused by name. The topic is persistent, so without the bound it reopens (no ring allocated).
    /// </summary>
    [Fact]
    public async Task A_topic_meta_transient_capacity_past_2_to_the_24_refuses_the_open_naming_the_range()
    {
        await using var f = await BrokerFixture.StartAsync();
        f.Broker.CreateTopic("ledger", s_base);
        var meta = Path.Combine(f.DataDirectory, "topics", "ledger", TopicRegistry.MetaFile);
        var original = File.ReadAllText(meta);
        var damaged = string.Join('\n', original.Split('\n').Select(l => l.StartsWith("transientCapacity=", StringComparison.Ordinal) ? "transientCapacity=33554432" : l));

        var e = await Assert.ThrowsAsync<BrokerException>(() => f.RestartAsync(whileClosed: () => File.WriteAllText(meta, damaged)));
        Assert.Equal(BrokerErrorCode.StorageError, e.Code);
        Assert.Contains("has a value for 'transientCapacity' out of range: '33554432' (1 to 16777216)", e.Message, StringComparison.Ordinal);

        await f.RestartAsync(whileClosed: () => File.WriteAllText(meta, original));
        Assert.True(f.Broker.TopicExists("ledger"));
    }

    /// <summary>
    /// A SegmentBytes past 1 GiB gives 1 GiB segments, but the twice-MaxMessageBytes rule was checked against
    /// SegmentBytes, so a message limit up to 2^31 − 1 (records that fit no segment) passed. Validate is called first
    /// so that, without the bound, the test fails before creating 1 GiB segments.
    /// </summary>
    [Theory]
    [InlineData(4L << 30, int.MaxValue)]
    [InlineData(2L << 30, 1 << 30)]
    [InlineData(2L << 30, (1 << 29) + 1)]
    public async Task A_message_limit_past_half_the_segment_size_in_use_is_refused_naming_MaxMessageBytes(long segmentBytes, int maxMessageBytes)
    {
        var options = s_base with { SegmentBytes = segmentBytes, MaxMessageBytes = maxMessageBytes };

        var refused = Assert.IsType<BrokerException>(Record.Exception(options.Validate));
        Assert.Equal(BrokerErrorCode.InvalidArgument, refused.Code);
        Assert.Contains($"MaxMessageBytes ({maxMessageBytes}) must be at most half the journal segment size in use (1073741824 bytes", refused.Message, StringComparison.Ordinal);
        Assert.Contains("must fit in one segment", refused.Message, StringComparison.Ordinal);

        await using var f = await BrokerFixture.StartAsync();
        Assert.Equal(BrokerErrorCode.InvalidArgument, Assert.Throws<BrokerException>(() => f.Broker.CreateTopic("big", options)).Code);
        Assert.False(f.Broker.TopicExists("big"));
    }

    /// <summary>A transient topic has no segments: its message limit is bounded by the SegmentBytes rule alone.</summary>
    [Fact]
    public void A_transient_topic_is_not_bound_by_the_journal_segment_size()
    {
        (s_base with { Persistent = false, SegmentBytes = 4L << 30, MaxMessageBytes = 1 << 30 }).Validate();
    }

    /// <summary>
    /// The largest accepted limit, against the journal's own constants, for segment sizes from the smallest to the
    /// largest: a record of a message at the limit plus the most the broker adds to it (an idempotent producer's
    /// fb-producer with an epoch; a dead letter's fb-dlq-* with the longest names and a 1,024-character error of
    /// 3-byte characters) fits in a segment; one byte more is refused.
    /// </summary>
    [Theory]
    [InlineData(64 << 10)]
    [InlineData(1 << 20)]
    [InlineData(64 << 20)]
    [InlineData(1 << 30)]
    public void The_largest_message_limit_leaves_room_in_a_segment_for_what_the_broker_adds(int segmentSize)
    {
        var largest = TopicOptions.MaxMessageBytesFor(segmentSize);
        (s_base with { SegmentBytes = segmentSize, MaxMessageBytes = largest }).Validate();
        (s_base with { SegmentBytes = 8L << 30, MaxMessageBytes = TopicOptions.MaxMessageBytesFor(1 << 30) }).Validate();
        Assert.Throws<BrokerException>(() => (s_base with { SegmentBytes = segmentSize, MaxMessageBytes = largest + 1 }).Validate());

        const int deadLetterHeaders = (3 * 5) + 12 + 12 + 13 + 17 + 12 + 255 + 255 + 8 + 8 + (3 * 1024);
        var added = Math.Max(Broker.ProducerHeaderSize(withEpoch: true), deadLetterHeaders);
        Assert.True((long)largest + added <= JournalOptions.MaxRecordContentBytes(segmentSize), $"{largest} + {added} bytes in a {segmentSize}-byte segment");
    }

    /// <summary>The journal's rule itself: a record of MaxRecordContentBytes fits in a 64 KiB segment, one byte more does not.</summary>
    [Fact]
    public void A_record_of_the_journals_largest_content_is_appended_and_one_byte_more_is_refused()
    {
        using var dir = new TempDirectory("fastbroker-limits");
        using var journal = JournalLog.Open(dir.Path, JournalOptions.Default with { SegmentSize = 64 << 10 });
        var max = JournalOptions.MaxRecordContentBytes(64 << 10);
        Assert.Equal((64 << 10) - 128 - 32, max);

        Assert.True(journal.TryAppend(new byte[max], out var offset));
        Assert.Equal(0, offset);
        var e = Assert.Throws<JournalException>(() => journal.TryAppend(new byte[max + 1], out _));
        Assert.Equal(JournalErrorCode.RecordTooLarge, e.ErrorCode);
    }

    /// <summary>
    /// A message at the largest limit of the smallest segments (32 KiB in 64 KiB segments), with a key, headers and a
    /// TTL (its fb-expires counted in the limit), is stored and read back whole; one byte more is refused.
    /// </summary>
    [Fact]
    public async Task A_message_at_the_largest_limit_of_the_smallest_segments_is_published_and_read_back()
    {
        await using var f = await BrokerFixture.StartAsync();
        var limit = TopicOptions.MaxMessageBytesFor(64 << 10);
        f.Broker.CreateTopic("edge", s_base with { SegmentBytes = 64 << 10, MaxMessageBytes = limit });
        var headers = new MessageHeaders().Add("kind", "edge");
        var key = "k"u8.ToArray();
        var payload = new byte[limit - key.Length - headers.Length - Broker.ExpiryHeaderSize];
        Random.Shared.NextBytes(payload);

        Assert.Equal(0, await f.Broker.PublishAsync("edge", payload, key, headers, TimeSpan.FromHours(1)));
        var tooLarge = await Assert.ThrowsAsync<BrokerException>(async () => await f.Broker.PublishAsync("edge", new byte[payload.Length + 1], key, headers, TimeSpan.FromHours(1)));
        Assert.Equal(BrokerErrorCode.MessageTooLarge, tooLarge.Code);
        Assert.Equal(1, await f.Broker.PublishAsync("edge", "next"u8.ToArray())); // a second record rolls to a new segment

        using var sub = f.Broker.Subscribe("edge", new SubscriptionOptions { Start = StartPosition.Earliest });
        var got = new List<byte[]>();
        var reader = new PayloadCopier(got);
        Eventually.True(() =>
        {
            sub.Fetch(10, ref reader);
            return got.Count == 2;
        }, "both messages are read back");
        Assert.Equal(payload, got[0]);
        Assert.Equal("next"u8.ToArray(), got[1]);
    }

    private readonly struct PayloadCopier(List<byte[]> into) : IMessageHandler
    {
        public void OnMessage(scoped in MessageView message) => into.Add(message.Payload.ToArray());
    }
}
