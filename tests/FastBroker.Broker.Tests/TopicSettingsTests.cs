using FastBroker.Engine;

namespace FastBroker.BrokerTests;

/// <summary>
/// A topic's <c>topic.meta</c>: written durably before its journal, and refused when damaged instead of being taken
/// for defaults (docs/broker.md, "On disk").
/// </summary>
public class TopicSettingsTests
{
    private static readonly TopicOptions s_ledger = TopicOptions.Default with
    {
        Durability = Durability.Fsynced,
        SegmentBytes = 1L << 20,
        MaxMessageBytes = 64 * 1024,
        RetentionAge = TimeSpan.FromHours(6),
        RetentionBytes = 64L << 20,
    };

    [Theory]
    [InlineData("")] // what a crash between write and rename left before the file was flushed
    [InlineData("\n\n")]
    [InlineData("persistent=true\ndurability=Fsynced\n")] // cut short
    [InlineData("persistent=true\ndurability=Fsyncd\nmaxMessageBytes=65536\nsegmentBytes=1048576\ntransientCapacity=65536\n")]
    [InlineData("persistent=true\ndurability=Fsynced\nmaxMessageBytes=65536\nsegmentBytes=1048\ntransientCapacity=65536\n")]
    [InlineData("\0\0\0\0\0\0\0\0")]
    public async Task A_damaged_topic_meta_refuses_the_open_naming_the_file_and_the_restored_file_reopens_the_topic_as_it_was(string damaged)
    {
        await using var f = await BrokerFixture.StartAsync();
        f.Broker.CreateTopic("ledger", s_ledger);
        f.Broker.CreateTopic("other");
        Assert.Equal(0, await f.Broker.PublishAsync("ledger", "kept"u8.ToArray()));
        var meta = Path.Combine(f.DataDirectory, "topics", "ledger", TopicRegistry.MetaFile);
        var original = File.ReadAllText(meta);

        // Not reopened as a Written topic without retention: refused, with the topic, the file and the fix named.
        var e = await Assert.ThrowsAsync<BrokerException>(() => f.RestartAsync(whileClosed: () => File.WriteAllText(meta, damaged)));
        Assert.Equal(BrokerErrorCode.StorageError, e.Code);
        Assert.Contains("topic 'ledger'", e.Message, StringComparison.Ordinal);
        Assert.Contains(meta, e.Message, StringComparison.Ordinal);
        Assert.Contains("restore the file", e.Message, StringComparison.Ordinal);

        // The documented repair: write the settings back. The topic (and the others) open again as they were.
        await f.RestartAsync(whileClosed: () => File.WriteAllText(meta, original));
        Assert.True(f.Broker.Topics.TryGet("ledger", out var ledger));
        Assert.Equal(s_ledger, ledger.Options);
        Assert.Equal(1, f.Broker.GetSnapshot().Topics.Single(t => t.Name == "ledger").Head);
        Assert.True(f.Broker.Topics.TryGet("other", out _));
    }

    /// <summary>
    /// A number in <c>topic.meta</c> that its setting cannot hold (a retention age past <see cref="TimeSpan.MaxValue"/>,
    /// a size past its type, a negative one) refuses the open as any damaged meta does, naming the topic, the setting
    /// and the value: a retention age of 2^63 - 1 ms escaped the open as ArgumentOutOfRangeException ("TimeSpan
    /// overflowed"), not a BrokerException.
    /// </summary>
    [Theory]
    [InlineData("retentionAgeMs", "9223372036854775807")]
    [InlineData("retentionAgeMs", "922337203685478")] // one past TimeSpan.MaxValue in whole milliseconds
    [InlineData("retentionBytes", "-1")]
    [InlineData("maxMessageBytes", "2147483648")]
    [InlineData("segmentBytes", "99999999999999999999")]
    [InlineData("transientCapacity", "2147483648")]
    public async Task A_number_in_topic_meta_out_of_its_settings_range_refuses_the_open_naming_the_topic_setting_and_value(string key, string value)
    {
        await using var f = await BrokerFixture.StartAsync();
        f.Broker.CreateTopic("ledger", s_ledger);
        Assert.Equal(0, await f.Broker.PublishAsync("ledger", "kept"u8.ToArray()));
        var meta = Path.Combine(f.DataDirectory, "topics", "ledger", TopicRegistry.MetaFile);
        var original = File.ReadAllText(meta);
        Assert.Contains($"\n{key}=", "\n" + original, StringComparison.Ordinal);
        var damaged = string.Join('\n', original.Split('\n').Select(l => l.StartsWith(key + "=", StringComparison.Ordinal) ? $"{key}={value}" : l));

        var e = await Assert.ThrowsAsync<BrokerException>(() => f.RestartAsync(whileClosed: () => File.WriteAllText(meta, damaged)));
        Assert.Equal(BrokerErrorCode.StorageError, e.Code);
        Assert.Contains("topic 'ledger'", e.Message, StringComparison.Ordinal);
        Assert.Contains(meta, e.Message, StringComparison.Ordinal);
        Assert.Contains($"has a value for '{key}' out of range: '{value}'", e.Message, StringComparison.Ordinal);

        await f.RestartAsync(whileClosed: () => File.WriteAllText(meta, original));
        Assert.True(f.Broker.Topics.TryGet("ledger", out var ledger));
        Assert.Equal(s_ledger, ledger.Options);
    }

    [Fact]
    public async Task The_longest_retention_age_a_topic_can_hold_is_written_and_reopens_unchanged()
    {
        await using var f = await BrokerFixture.StartAsync();
        var forever = s_ledger with { RetentionAge = TimeSpan.FromMilliseconds(TimeSpan.MaxValue.Ticks / TimeSpan.TicksPerMillisecond) };
        f.Broker.CreateTopic("ledger", forever);
        await f.RestartAsync();
        Assert.True(f.Broker.Topics.TryGet("ledger", out var ledger));
        Assert.Equal(forever, ledger.Options);
    }

    [Fact]
    public async Task A_topic_meta_missing_beside_a_journal_refuses_the_open_instead_of_dropping_the_topic()
    {
        await using var f = await BrokerFixture.StartAsync();
        f.Broker.CreateTopic("ledger", s_ledger);
        Assert.Equal(0, await f.Broker.PublishAsync("ledger", "kept"u8.ToArray()));
        var meta = Path.Combine(f.DataDirectory, "topics", "ledger", TopicRegistry.MetaFile);

        var e = await Assert.ThrowsAsync<BrokerException>(() => f.RestartAsync(whileClosed: () => File.Delete(meta)));
        Assert.Equal(BrokerErrorCode.StorageError, e.Code);
        Assert.Contains("missing", e.Message, StringComparison.Ordinal);
        Assert.Contains(meta, e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_topic_directory_left_without_settings_or_journal_by_a_crashed_creation_is_removed()
    {
        await using var f = await BrokerFixture.StartAsync();
        await f.RestartAsync(whileClosed: () => Directory.CreateDirectory(Path.Combine(f.DataDirectory, "topics", "half")));
        Assert.False(f.Broker.Topics.TryGet("half", out _));
    }

    [Fact]
    public async Task The_settings_are_written_whole_and_reopen_unchanged()
    {
        await using var f = await BrokerFixture.StartAsync();
        f.Broker.CreateTopic("ledger", s_ledger);
        var dir = Path.Combine(f.DataDirectory, "topics", "ledger");
        Assert.Equal(s_ledger, TopicRegistry.ParseMeta(File.ReadAllText(Path.Combine(dir, TopicRegistry.MetaFile))));
        Assert.False(File.Exists(Path.Combine(dir, TopicRegistry.MetaFile + ".tmp")));
        await f.RestartAsync();
        Assert.True(f.Broker.Topics.TryGet("ledger", out var ledger));
        Assert.Equal(s_ledger, ledger.Options);
    }
}
