using FastBroker.Engine;

namespace FastBroker.BrokerTests;

/// <summary>
/// A persistent topic whose <c>topic.meta</c> is there and whose <c>journal/</c> is not (an operator deleted it, a
/// restore failed, a disk was replaced): no crash of a creation or removal leaves that (the journal's directory is made
/// and synced before the rename to <c>topic.meta</c> commits a creation), so every message of the topic is gone. Before,
/// the open created an empty journal in its place and the topic restarted at offset 0, telling nobody; now the open is
/// refused with <see cref="BrokerErrorCode.StorageError"/> naming the topic, the missing path and what to do, and
/// nothing is created on disk. A <c>journal/</c> that is there but empty still opens (the journal's own recovery).
/// </summary>
[System.Runtime.Versioning.UnsupportedOSPlatform("windows")] // as TopicOpenErrorTests, whose tree it compares
public class TopicJournalMissingTests
{
    private static readonly TopicOptions s_small = TopicOptions.Default with { SegmentBytes = 1L << 20, MaxMessageBytes = 64 * 1024 };

    [Fact]
    public async Task A_persistent_topic_whose_journal_directory_is_gone_refuses_the_open_and_creates_nothing()
    {
        await using var f = await BrokerFixture.StartAsync();
        f.Broker.CreateTopic("ledger", s_small);
        f.Broker.CreateTopic("other", s_small);
        for (var i = 0; i < 3; i++)
        {
            Assert.Equal(i, await f.Broker.PublishAsync("ledger", BrokerFixture.Utf8($"m{i}")));
        }

        Assert.Equal(0, await f.Broker.PublishAsync("other", "kept"u8.ToArray()));
        var dir = Path.Combine(f.DataDirectory, "topics", "ledger");
        var journal = Path.Combine(dir, TopicRegistry.JournalDirectory);
        var aside = Path.Combine(f.DataDirectory, "ledger-journal-backup");
        Dictionary<string, string>? before = null;

        var e = await Assert.ThrowsAsync<BrokerException>(() => f.RestartAsync(whileClosed: () =>
        {
            Directory.Move(journal, aside); // as an operator's deletion: the topic's directory no longer holds it
            before = TopicOpenErrorTests.Tree(f.DataDirectory);
        }));

        Assert.Equal(BrokerErrorCode.StorageError, e.Code);
        Assert.Contains("topic 'ledger'", e.Message, StringComparison.Ordinal);
        Assert.Contains($"'{journal}' is missing", e.Message, StringComparison.Ordinal);
        Assert.Contains("restore the directory", e.Message, StringComparison.Ordinal);
        Assert.Contains($"remove the topic's directory '{dir}'", e.Message, StringComparison.Ordinal);
        Assert.False(Path.Exists(journal), "the refused open created a journal in place of the missing one");
        Assert.Equal(before, TopicOpenErrorTests.Tree(f.DataDirectory));

        // Restored: the topic opens with every message it held, the other topics too (the refused open closed them).
        Directory.Move(aside, journal);
        await f.RestartAsync();
        var topics = f.Broker.GetSnapshot().Topics;
        Assert.Equal(3, topics.Single(t => t.Name == "ledger").Head);
        Assert.Equal(1, topics.Single(t => t.Name == "other").Head);
    }

    [Fact]
    public async Task The_operator_drops_the_topic_by_removing_its_directory_as_the_error_says()
    {
        await using var f = await BrokerFixture.StartAsync();
        f.Broker.CreateTopic("ledger", s_small);
        Assert.Equal(0, await f.Broker.PublishAsync("ledger", "lost"u8.ToArray()));
        var dir = Path.Combine(f.DataDirectory, "topics", "ledger");

        await Assert.ThrowsAsync<BrokerException>(() => f.RestartAsync(whileClosed: () => Directory.Delete(Path.Combine(dir, TopicRegistry.JournalDirectory), recursive: true)));

        Directory.Delete(dir, recursive: true);
        await f.RestartAsync();
        Assert.False(f.Broker.TopicExists("ledger"));
    }

    [Fact]
    public async Task A_journal_directory_that_is_there_but_empty_opens_and_a_transient_topic_needs_none()
    {
        await using var f = await BrokerFixture.StartAsync();
        f.Broker.CreateTopic("ledger", s_small);
        f.Broker.CreateTopic("fleeting", s_small with { Persistent = false });
        Assert.Equal(0, await f.Broker.PublishAsync("ledger", "m"u8.ToArray()));
        var journal = Path.Combine(f.DataDirectory, "topics", "ledger", TopicRegistry.JournalDirectory);
        Assert.False(Path.Exists(Path.Combine(f.DataDirectory, "topics", "fleeting", TopicRegistry.JournalDirectory)));

        // What a power loss can leave of a journal whose segment files' entries were not synced (a Written topic): its
        // directory, committed with the topic, and nothing in it. The journal's open takes it as it is.
        await f.RestartAsync(whileClosed: () =>
        {
            Directory.Delete(journal, recursive: true);
            Directory.CreateDirectory(journal);
        });

        Assert.True(f.Broker.TopicExists("ledger"));
        Assert.True(f.Broker.TopicExists("fleeting"));
    }
}
