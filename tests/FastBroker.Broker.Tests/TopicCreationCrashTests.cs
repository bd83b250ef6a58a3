using System.Collections.Concurrent;
using FastBroker.Engine;

namespace FastBroker.BrokerTests;

/// <summary>
/// What a crash (or power loss) during a topic's creation, or during the removal of a refused one, can leave on disk:
/// the settings are written as <c>topic.meta.creating</c> before the journal exists and renamed to <c>topic.meta</c>
/// once it does, so every state before that rename is a directory without <c>topic.meta</c>, which the next open
/// removes and logs instead of opening a topic whose creation was never acknowledged (docs/broker.md, "On disk").
/// </summary>
public class TopicCreationCrashTests
{
    private const string PendingMetaFile = "topic.meta.creating"; // TopicRegistry.PendingMetaFile, spelled as on disk

    private static readonly TopicOptions s_refused = TopicOptions.Default with { Durability = Durability.Fsynced, SegmentBytes = 1L << 20, MaxMessageBytes = 1024 };
    private static readonly TopicOptions s_later = TopicOptions.Default with { SegmentBytes = 2L << 20, MaxMessageBytes = 4096 };

    /// <summary>The partial states, each as the creation steps (or the removal's, in reverse) leave it.</summary>
    public static TheoryData<string> States =>
    [
        "directory only", // created the directory, nothing in it yet (or the removal deleted all but the directory)
        "settings being written", // topic.meta.creating.tmp, before its rename
        "settings without journal", // topic.meta.creating durable, the journal not created yet (or already removed)
        "settings and journal", // the journal created, the commit rename not done
        "settings and part of a journal", // the journal being created, or half deleted by a removal
        "a legacy temporary file", // topic.meta.tmp of a settings file never renamed
    ];

    [Theory]
    [MemberData(nameof(States))]
    public async Task A_topic_directory_a_creation_left_without_topic_meta_is_removed_logged_and_the_topic_created_again_later(string state)
    {
        var log = new ConcurrentQueue<string>();
        await using var f = await BrokerFixture.StartAsync(o => o with { Log = log.Enqueue });
        f.Broker.CreateTopic("kept");
        Assert.Equal(0, await f.Broker.PublishAsync("kept", "kept"u8.ToArray()));
        f.Broker.CreateTopic("half", s_refused);
        Assert.Equal(0, await f.Broker.PublishAsync("half", "never acknowledged"u8.ToArray()));
        var dir = Path.Combine(f.DataDirectory, "topics", "half");

        await f.RestartAsync(o => o with { Log = log.Enqueue }, whileClosed: () => Leave(dir, state));

        Assert.False(f.Broker.Topics.TryGet("half", out _), $"{state}: the topic a creation did not complete was opened");
        Assert.DoesNotContain(f.Broker.GetSnapshot().Topics, t => t.Name == "half");
        Assert.False(Directory.Exists(dir), $"{state}: left on disk: {(Directory.Exists(dir) ? $"{dir} holding [{string.Join(", ", Directory.GetFileSystemEntries(dir, "*", SearchOption.AllDirectories))}]" : "nothing")}");
        var reported = log.Where(l => l.Contains("topic 'half'", StringComparison.Ordinal)).ToList();
        var line = Assert.Single(reported);
        Assert.Contains("creation that did not complete", line, StringComparison.Ordinal);
        Assert.Contains(dir, line, StringComparison.Ordinal);
        Assert.True(f.Broker.Topics.TryGet("kept", out _));
        Assert.Equal(1, f.Broker.GetSnapshot().Topics.Single(t => t.Name == "kept").Head);

        // The name is free: created again with other settings, it opens with them, empty, and stays after a restart.
        f.Broker.CreateTopic("half", s_later);
        await f.RestartAsync();
        Assert.True(f.Broker.Topics.TryGet("half", out var half));
        Assert.Equal(s_later, half.Options);
        Assert.Equal(0, f.Broker.GetSnapshot().Topics.Single(t => t.Name == "half").Head);
    }

    [Fact]
    public async Task A_created_topic_holds_topic_meta_and_its_journal_and_no_pending_settings()
    {
        await using var f = await BrokerFixture.StartAsync();
        f.Broker.CreateTopic("ledger", s_refused);
        f.Broker.CreateTopic("transient", TopicOptions.Default with { Persistent = false });
        var ledger = Path.Combine(f.DataDirectory, "topics", "ledger");
        Assert.Equal([TopicRegistry.JournalDirectory, TopicRegistry.MetaFile], Names(ledger));
        Assert.Equal([TopicRegistry.MetaFile], Names(Path.Combine(f.DataDirectory, "topics", "transient")));

        await f.RestartAsync();
        Assert.True(f.Broker.Topics.TryGet("ledger", out var opened));
        Assert.Equal(s_refused, opened.Options);
        Assert.True(f.Broker.Topics.TryGet("transient", out _));
    }

    [Fact]
    public async Task A_topic_directory_without_topic_meta_holding_what_no_creation_makes_is_left_and_logged()
    {
        var log = new ConcurrentQueue<string>();
        await using var f = await BrokerFixture.StartAsync(o => o with { Log = log.Enqueue });
        var dir = Path.Combine(f.DataDirectory, "topics", "odd");
        await f.RestartAsync(o => o with { Log = log.Enqueue }, whileClosed: () =>
        {
            Directory.CreateDirectory(Path.Combine(dir, "groups"));
            File.WriteAllText(Path.Combine(dir, "notes.txt"), "an operator's file");
            File.WriteAllText(Path.Combine(dir, PendingMetaFile), TopicRegistry.FormatMeta(s_refused));
        });

        Assert.False(f.Broker.Topics.TryGet("odd", out _));
        Assert.Equal(["groups", "notes.txt", PendingMetaFile], Names(dir));
        var line = Assert.Single(log, l => l.Contains("topic 'odd'", StringComparison.Ordinal));
        Assert.Contains("left as it is", line, StringComparison.Ordinal);
    }

    /// <summary>
    /// A promoted standby can hold a topic's group state and no <c>topic.meta</c> (the state came apart from the
    /// topic's records, whose creation never reached it): no topic owns it, so the open removes it, naming each group
    /// and its ack floor, and a topic created under that name starts its groups anew, not at the old ack floor
    /// (<c>PromotedGroupStateOnlyTests</c> runs it through a real promotion).
    /// </summary>
    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task A_topic_directory_holding_only_group_state_is_removed_at_open_and_a_topic_created_there_starts_its_group_anew(bool besideCreationLeftovers)
    {
        var log = new ConcurrentQueue<string>();
        await using var f = await BrokerFixture.StartAsync(o => o with { Log = log.Enqueue });
        f.Broker.CreateTopic("jobs");
        for (var i = 0; i < 10; i++)
        {
            await f.Broker.PublishAsync("jobs", new byte[8]);
        }

        using (var member = f.Broker.JoinGroup("jobs", "workers", prefetch: 4))
        {
            foreach (var m in Consume.FetchMany(member, 4, "the group's first 4 messages"))
            {
                Assert.True(member.Ack(m.Offset, m.DeliveryCount), $"ack of {m.Offset}");
            }
        }

        var dir = Path.Combine(f.DataDirectory, "topics", "jobs");
        await f.RestartAsync(o => o with { Log = log.Enqueue }, whileClosed: () =>
        {
            // What the standby's copy holds when the group state came and the topic's creation did not.
            Directory.Delete(Path.Combine(dir, TopicRegistry.JournalDirectory), recursive: true);
            File.Delete(Path.Combine(dir, TopicRegistry.MetaFile));
            if (besideCreationLeftovers)
            {
                File.WriteAllText(Path.Combine(dir, PendingMetaFile), TopicRegistry.FormatMeta(s_refused));
            }
        });

        Assert.False(f.Broker.Topics.TryGet("jobs", out _));
        Assert.False(Directory.Exists(dir), $"'{dir}' is kept: [{string.Join(", ", Directory.Exists(dir) ? Names(dir) : [])}]");
        var line = Assert.Single(log, l => l.Contains("topic 'jobs'", StringComparison.Ordinal));
        Assert.Contains($"removed '{dir}'", line, StringComparison.Ordinal);
        Assert.Contains("group 'workers' at ack floor 4", line, StringComparison.Ordinal);

        f.Broker.CreateTopic("jobs", s_later);
        await f.Broker.PublishAsync("jobs", new byte[8]);
        using var again = f.Broker.JoinGroup("jobs", "workers", prefetch: 1);
        Assert.Equal(0, Consume.FetchOne(again, "the new topic's first message").Offset);
    }

    /// <summary>
    /// A failover pair's standby deletes its copy of a topic (or resets it) by uncommitting it first, then its groups'
    /// state, the journal and the settings: a kill in between leaves <c>groups/</c> beside the pending settings, which
    /// the next open (the standby's, or the broker's once promoted) removes with the rest.
    /// </summary>
    [Fact]
    public async Task A_topic_directory_holding_groups_beside_the_pending_settings_is_removed_and_logged()
    {
        var log = new ConcurrentQueue<string>();
        await using var f = await BrokerFixture.StartAsync(o => o with { Log = log.Enqueue });
        var dir = Path.Combine(f.DataDirectory, "topics", "uncommitted");
        await f.RestartAsync(o => o with { Log = log.Enqueue }, whileClosed: () =>
        {
            Directory.CreateDirectory(Path.Combine(dir, "groups"));
            File.WriteAllBytes(Path.Combine(dir, "groups", "work.state"), new byte[64]);
            Directory.CreateDirectory(Path.Combine(dir, TopicRegistry.JournalDirectory));
            File.WriteAllText(Path.Combine(dir, PendingMetaFile), TopicRegistry.FormatMeta(s_refused));
        });

        Assert.False(f.Broker.Topics.TryGet("uncommitted", out _));
        Assert.False(Directory.Exists(dir), $"left on disk: {dir}");
        var line = Assert.Single(log, l => l.Contains("topic 'uncommitted'", StringComparison.Ordinal));
        Assert.Contains("left by a creation that did not complete (it held groups, journal, topic.meta.creating)", line, StringComparison.Ordinal);
    }

    /// <summary>Turns a created topic's directory into what a crash at <paramref name="state"/> leaves.</summary>
    private static void Leave(string dir, string state)
    {
        var meta = Path.Combine(dir, TopicRegistry.MetaFile);
        var pending = Path.Combine(dir, PendingMetaFile);
        var journal = Path.Combine(dir, TopicRegistry.JournalDirectory);
        switch (state)
        {
            case "directory only":
                Directory.Delete(journal, recursive: true);
                File.Delete(meta);
                break;
            case "settings being written":
                Directory.Delete(journal, recursive: true);
                File.Move(meta, pending + ".tmp");
                break;
            case "settings without journal":
                Directory.Delete(journal, recursive: true);
                File.Move(meta, pending);
                break;
            case "settings and journal":
                File.Move(meta, pending);
                break;
            case "settings and part of a journal":
                foreach (var segment in Directory.GetFiles(journal).Where(p => !p.EndsWith(".lock", StringComparison.Ordinal)))
                {
                    File.Delete(segment);
                }

                Assert.NotEmpty(Directory.GetFileSystemEntries(journal));
                File.Move(meta, pending);
                break;
            case "a legacy temporary file":
                Directory.Delete(journal, recursive: true);
                File.Move(meta, meta + ".tmp");
                break;
            default:
                throw new ArgumentOutOfRangeException(nameof(state), state, null);
        }
    }

    private static string[] Names(string dir) => [.. Directory.GetFileSystemEntries(dir).Select(p => Path.GetFileName(p)!).Order(StringComparer.Ordinal)];
}
