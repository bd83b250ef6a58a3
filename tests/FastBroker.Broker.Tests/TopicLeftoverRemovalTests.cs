using System.Collections.Concurrent;
using FastBroker.Engine;
using FastBroker.Testing;

namespace FastBroker.BrokerTests;

/// <summary>
/// A topic directory without <c>topic.meta</c> that the open did not remove (its removal failed, or it holds what no
/// creation makes) is still there when a topic is created under its name: the creation removes it first by the open's
/// rule, or is refused, and never takes over what is in it (its work-queue groups would start at the old topic's ack
/// floor). And whatever a power loss in the middle of such a removal keeps on disk, the next open (the broker's or a
/// standby's) handles it: the journal's removal is synced before the settings' is made, so no order of what reaches the
/// disk leaves a journal without settings, which an open refuses.
/// </summary>
public class TopicLeftoverRemovalTests
{
    private const int Acked = 4;
    private static readonly TopicOptions s_later = TopicOptions.Default with { SegmentBytes = 2L << 20, MaxMessageBytes = 4096 };

    /// <summary>
    /// "fails at open": the open's removal of the group state fails (an I/O error, made by the test's step hook: tests
    /// may run as root, where permissions stop no delete) and the creation's succeeds; "fails at creation too": the
    /// creation is refused while it fails, the group state left as it was, and succeeds after; "a directory in groups":
    /// no group's state, left at open as what no creation makes, and the creation is refused.
    /// </summary>
    [Theory]
    [InlineData("fails at open")]
    [InlineData("fails at creation too")]
    [InlineData("a directory in groups")]
    public async Task A_topic_created_where_the_open_left_group_state_takes_none_of_it_over(string how)
    {
        var log = new ConcurrentQueue<string>();
        await using var f = await BrokerFixture.StartAsync(o => o with { Log = log.Enqueue });
        f.Broker.CreateTopic("jobs");
        for (var i = 0; i < 10; i++)
        {
            await f.Broker.PublishAsync("jobs", new byte[8]);
        }

        using (var member = f.Broker.JoinGroup("jobs", "workers", prefetch: Acked))
        {
            foreach (var m in Consume.FetchMany(member, Acked, "the group's first messages"))
            {
                Assert.True(member.Ack(m.Offset, m.DeliveryCount), $"ack of {m.Offset}");
            }
        }

        var dir = Path.Combine(f.DataDirectory, "topics", "jobs");
        var groups = Path.Combine(dir, TopicRegistry.GroupsDirectory);
        var state = Path.Combine(groups, "workers.state");
        var failing = how != "a directory in groups" ? 1 : 0;
        void FailRemoval(string step)
        {
            if (Volatile.Read(ref failing) == 1 && step == $"delete recursively {groups}")
            {
                throw new IOException("test: the group state's removal fails");
            }
        }

        await f.RestartAsync(o => o with { Log = log.Enqueue, TopicFileStep = FailRemoval }, whileClosed: () =>
        {
            // What a promoted standby holds when the group state came and the topic's creation did not.
            Directory.Delete(Path.Combine(dir, TopicRegistry.JournalDirectory), recursive: true);
            File.Delete(Path.Combine(dir, TopicRegistry.MetaFile));
            if (how == "a directory in groups")
            {
                Directory.CreateDirectory(Path.Combine(groups, "archive"));
            }
        });

        Assert.False(f.Broker.Topics.TryGet("jobs", out _));
        Assert.True(File.Exists(state), $"{how}: the open removed the group state");
        Assert.Equal(Acked, GroupAckStore.ReadFloor(state));
        if (how == "a directory in groups")
        {
            Assert.Contains(log, l => l.Contains("topic 'jobs'", StringComparison.Ordinal) && l.Contains("left as it is", StringComparison.Ordinal));
        }
        else
        {
            // What failed (the group state, at its path), the error, and what the broker does next.
            Assert.Contains(
                $"topic 'jobs': '{dir}' has no 'topic.meta' (groups), and the removal of the work-queue group state in it ('{groups}': group 'workers' at ack floor {Acked}) failed: "
                + "test: the group state's removal fails; the broker goes on without a topic 'jobs' and leaves the directory as it is: the next open tries the removal again, "
                + "as does a creation of 'jobs' (refused while it fails)",
                log);
        }

        if (how == "fails at open")
        {
            Volatile.Write(ref failing, 0);
        }
        else
        {
            var refused = Assert.Throws<BrokerException>(() => f.Broker.CreateTopic("jobs", s_later));
            Assert.Equal(BrokerErrorCode.StorageError, refused.Code);
            Assert.Contains($"'{dir}'", refused.Message, StringComparison.Ordinal);
            Assert.Contains("the topic is not created", refused.Message, StringComparison.Ordinal);
            Assert.False(f.Broker.Topics.TryGet("jobs", out _), $"{how}: the refused creation left the topic open");
            Assert.Equal(Acked, GroupAckStore.ReadFloor(state)); // left as it was
            Assert.False(File.Exists(Path.Combine(dir, TopicRegistry.PendingMetaFile)), $"{how}: the refused creation left its settings");

            // Once the directory can be removed (or is moved away), the creation succeeds.
            Volatile.Write(ref failing, 0);
            if (how == "a directory in groups")
            {
                Directory.Delete(Path.Combine(groups, "archive"));
            }
        }

        f.Broker.CreateTopic("jobs", s_later);
        Assert.False(Directory.Exists(Path.Combine(dir, "groups", "archive")));
        for (var i = 0; i < 10; i++)
        {
            await f.Broker.PublishAsync("jobs", new byte[8]);
        }

        using var again = f.Broker.JoinGroup("jobs", "workers", prefetch: 1);
        var first = Consume.FetchOne(again, "the new topic's first message").Offset;
        Assert.True(first == 0, $"{how}: the group 'workers' of the topic created again starts at offset {first}, the old topic's ack floor, not at the new topic's first message (0)\n{string.Join('\n', log)}");
        Assert.Contains(log, l => l.Contains($"removed '{dir}'", StringComparison.Ordinal) && l.Contains($"group 'workers' at ack floor {Acked}", StringComparison.Ordinal));
    }

    /// <summary>A file named <c>groups</c> is no group state: the open leaves the directory as it is, logged, and opens.</summary>
    [Fact]
    public async Task A_file_named_groups_in_a_topic_directory_without_topic_meta_is_left_and_the_broker_opens()
    {
        var log = new ConcurrentQueue<string>();
        await using var f = await BrokerFixture.StartAsync(o => o with { Log = log.Enqueue });
        var dir = Path.Combine(f.DataDirectory, "topics", "odd");
        await f.RestartAsync(o => o with { Log = log.Enqueue }, whileClosed: () =>
        {
            Directory.CreateDirectory(dir);
            File.WriteAllText(Path.Combine(dir, TopicRegistry.GroupsDirectory), "an operator's file");
        });

        Assert.False(f.Broker.Topics.TryGet("odd", out _));
        Assert.Equal([TopicRegistry.GroupsDirectory], Names(dir));
        var line = Assert.Single(log, l => l.Contains("topic 'odd'", StringComparison.Ordinal));
        Assert.Contains("left as it is", line, StringComparison.Ordinal);
    }

    /// <summary>
    /// A power loss keeps of the removal's steps since the directory's last sync any part (an unsynced directory's
    /// entries may reach the disk in any order): before each step, every state between what is there now and what was
    /// there at the last sync is one the next open may find. Each is built anew and opened by the broker's rule and the
    /// standby's: none may be refused.
    /// </summary>
    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public void Whatever_a_power_loss_in_a_leftover_directorys_removal_keeps_the_next_open_takes(bool withGroupState)
    {
        using var data = new TempDirectory();
        var root = data.Combine("topics");
        var dir = Path.Combine(root, "jobs");
        string[] start = withGroupState ? [TopicRegistry.GroupsDirectory, TopicRegistry.JournalDirectory, TopicRegistry.PendingMetaFile] : [TopicRegistry.JournalDirectory, TopicRegistry.PendingMetaFile];
        Make(dir, start);

        var states = new List<(string Before, string[] Entries)>();
        var durable = start;
        var synced = false;
        TopicRegistry.RemoveUncommitted(root, "jobs", dir, null, removeGroupState: true, step: what =>
        {
            var now = Names(dir);
            if (synced)
            {
                durable = now;
            }

            synced = what == $"sync directory {dir}";
            var undone = durable.Except(now).ToArray();
            for (var mask = 0; mask < 1 << undone.Length; mask++)
            {
                states.Add((what, [.. now.Concat(undone.Where((_, i) => (mask & (1 << i)) != 0)).Order(StringComparer.Ordinal)]));
            }
        });
        Assert.False(Directory.Exists(dir));
        Assert.NotEmpty(states);

        var failures = new List<string>();
        foreach (var (before, entries) in states.DistinctBy(s => string.Join(",", s.Entries)))
        {
            foreach (var broker in new[] { true, false })
            {
                using var again = new TempDirectory();
                var dir2 = again.Combine("topics", "jobs");
                Make(dir2, entries);
                var open = broker ? "the broker's open" : "the standby's open";
                try
                {
                    TopicRegistry.RemoveUncommitted(again.Combine("topics"), "jobs", dir2, null, removeGroupState: broker);
                    var kept = !broker && entries.Contains(TopicRegistry.GroupsDirectory) && !entries.Contains(TopicRegistry.PendingMetaFile);
                    if (Directory.Exists(dir2) != kept)
                    {
                        failures.Add($"a power loss before '{before}' may leave [{string.Join(", ", entries)}]: {open} {(kept ? "removed it" : "kept it")}");
                    }
                }
                catch (BrokerException e)
                {
                    failures.Add($"a power loss before '{before}' may leave [{string.Join(", ", entries)}]: {open} refuses it: {e.Message}");
                }
            }
        }

        Assert.True(failures.Count == 0, string.Join("\n", failures));
    }

    /// <summary>A topic directory holding <paramref name="entries"/> as a creation and a standby's group state make them.</summary>
    private static void Make(string dir, string[] entries)
    {
        Directory.CreateDirectory(dir);
        foreach (var entry in entries)
        {
            var path = Path.Combine(dir, entry);
            switch (entry)
            {
                case TopicRegistry.GroupsDirectory:
                    Directory.CreateDirectory(path);
                    File.WriteAllBytes(Path.Combine(path, "workers.state"), new byte[64]);
                    break;
                case TopicRegistry.JournalDirectory:
                    Directory.CreateDirectory(path);
                    File.WriteAllBytes(Path.Combine(path, "00000000000000000000.seg"), new byte[4096]);
                    break;
                default:
                    File.WriteAllText(path, TopicRegistry.FormatMeta(TopicOptions.Default));
                    break;
            }
        }
    }

    private static string[] Names(string dir) => [.. Directory.GetFileSystemEntries(dir).Select(p => Path.GetFileName(p)!).Order(StringComparer.Ordinal)];
}
