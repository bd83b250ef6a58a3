using FastBroker.Engine;

namespace FastBroker.BrokerTests;

/// <summary>
/// Every setting <see cref="TopicOptions.Validate"/> accepts is one the topic can be created with, written to
/// <c>topic.meta</c> and reopened with unchanged; the others are refused at creation, naming the setting
/// (docs/broker.md, "Topic settings").
/// </summary>
public class TopicOptionsRoundTripTests
{
    private static readonly TopicOptions s_base = TopicOptions.Default with { SegmentBytes = 1L << 20, MaxMessageBytes = 64 * 1024 };

    /// <summary>
    /// A retention age that is not a whole number of milliseconds was accepted and written as its whole milliseconds
    /// (0.5 ms as <c>retentionAgeMs=0</c>, which the open refuses; 1.5 ms reopened as 1 ms).
    /// </summary>
    [Theory]
    [InlineData(5_000L)] // 0.5 ms in ticks
    [InlineData(1L)] // one tick
    [InlineData(15_000L)] // 1.5 ms
    [InlineData(long.MaxValue)] // TimeSpan.MaxValue: 922,337,203,685,477.5807 ms
    public async Task A_retention_age_that_is_not_whole_milliseconds_is_refused_at_creation(long ticks)
    {
        await using var f = await BrokerFixture.StartAsync();
        var options = s_base with { RetentionAge = TimeSpan.FromTicks(ticks) };

        var e = Record.Exception(() => f.Broker.CreateTopic("aged", options));
        if (e is null)
        {
            var reopen = await Record.ExceptionAsync(() => f.RestartAsync());
            f.Broker.Topics.TryGet("aged", out var reopened);
            Assert.Fail($"created with RetentionAge {options.RetentionAge}; the reopen then: {reopen?.Message ?? $"succeeded with RetentionAge {reopened?.Options.RetentionAge}"}");
        }

        var refused = Assert.IsType<BrokerException>(e);
        Assert.Equal(BrokerErrorCode.InvalidArgument, refused.Code);
        Assert.Contains("RetentionAge", refused.Message, StringComparison.Ordinal);
        Assert.Contains("whole number of milliseconds", refused.Message, StringComparison.Ordinal);
        Assert.False(f.Broker.TopicExists("aged"));
        Assert.False(Directory.Exists(Path.Combine(f.DataDirectory, "topics", "aged")));
    }

    /// <summary>
    /// A segment size the journal cannot open with (not a multiple of 4096) was accepted by Validate, written to
    /// <c>topic.meta</c>, and then the journal's open threw ArgumentOutOfRangeException out of the creation.
    /// </summary>
    [Theory]
    [InlineData(200_000L)]
    [InlineData((1L << 20) + 1)]
    [InlineData((1L << 30) - 4095)]
    public async Task A_segment_size_the_journal_cannot_open_with_is_refused_at_creation_naming_SegmentBytes(long segmentBytes)
    {
        await using var f = await BrokerFixture.StartAsync();
        var options = s_base with { SegmentBytes = segmentBytes };

        var e = Record.Exception(() => f.Broker.CreateTopic("sized", options));
        var refused = Assert.IsType<BrokerException>(e);
        Assert.Equal(BrokerErrorCode.InvalidArgument, refused.Code);
        Assert.Contains($"SegmentBytes ({segmentBytes})", refused.Message, StringComparison.Ordinal);
        Assert.Contains("multiple of 4096", refused.Message, StringComparison.Ordinal);
        Assert.False(f.Broker.TopicExists("sized"));
        Assert.False(Directory.Exists(Path.Combine(f.DataDirectory, "topics", "sized")));
    }

    /// <summary>The edges of every numeric setting Validate accepts: created, written, reopened unchanged.</summary>
    [Theory]
    [MemberData(nameof(AcceptedEdges))]
    public async Task Every_edge_Validate_accepts_is_created_and_reopens_unchanged(string what, TopicOptions options)
    {
        options.Validate();
        await using var f = await BrokerFixture.StartAsync();
        f.Broker.CreateTopic("edge", options);
        Assert.Equal(options, TopicRegistry.ParseMeta(File.ReadAllText(Path.Combine(f.DataDirectory, "topics", "edge", TopicRegistry.MetaFile))));
        await f.RestartAsync();
        Assert.True(f.Broker.Topics.TryGet("edge", out var reopened), what);
        Assert.Equal(options, reopened.Options);
    }

    public static TheoryData<string, TopicOptions> AcceptedEdges() => new()
    {
        { "1 ms retention", s_base with { RetentionAge = TimeSpan.FromMilliseconds(1) } },
        { "longest retention", s_base with { RetentionAge = TimeSpan.FromMilliseconds(TimeSpan.MaxValue.Ticks / TimeSpan.TicksPerMillisecond) } },
        { "1 byte retention", s_base with { RetentionBytes = 1 } },
        { "largest retention bytes", s_base with { RetentionBytes = long.MaxValue } },
        { "smallest segment", s_base with { SegmentBytes = 64 * 1024, MaxMessageBytes = 32 * 1024 } },
        { "largest segment", s_base with { SegmentBytes = 1L << 30 } },
        { "segment past 1 GiB (1 GiB segments)", s_base with { SegmentBytes = (1L << 30) + 1 } },
        { "1-byte messages", s_base with { MaxMessageBytes = 1 } },
        { "transient, odd segment size", s_base with { Persistent = false, SegmentBytes = 200_000, TransientCapacity = 1 } },
    };
}
