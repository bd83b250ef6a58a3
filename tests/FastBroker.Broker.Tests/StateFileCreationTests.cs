using System.Buffers.Binary;
using System.Text;
using FastBroker.Engine;
using FastBroker.Testing;

namespace FastBroker.BrokerTests;

/// <summary>
/// A new state file (a durable name's first use, a group's first join) gets its name only once its header is written:
/// its bytes are written and flushed under a temporary name (<c>.creating</c> appended: <c>MappedStateFile.CreatingSuffix</c>) and renamed
/// into place, so no reader of its directory (a primary's checks of its state files) finds it short or without its
/// magic; what a crash leaves under the temporary name is removed when the broker opens.
/// </summary>
public class StateFileCreationTests
{
    private const string Creating = ".creating"; // MappedStateFile.CreatingSuffix
    private static readonly TopicOptions s_fsynced = TopicOptions.Default with { Durability = Durability.Fsynced, SegmentBytes = 4L << 20 };

    [Theory]
    [InlineData("position")]
    [InlineData("group")]
    public void A_new_state_file_gets_its_name_only_once_its_header_is_written(string kind)
    {
        using var dir = new TempDirectory();
        var path = dir.Combine(kind == "position" ? "sub.pos" : "g.state");
        var (magic, length) = kind == "position" ? (PositionStore.Magic, PositionStore.FileLength) : (GroupAckStore.Magic, GroupAckStore.FileLength());
        var flusher = new StateFileFlusher();
        var seen = new List<string>();
        flusher.Creating = p =>
        {
            Assert.Equal(path, p);
            var temporary = StateFileHeader.Read(p + Creating, magic, 1, kind, "magic");
            seen.Add($"{(File.Exists(p) ? "named" : "not named")}, temporary {temporary.Contents} of {temporary.Length} bytes");
        };

        if (kind == "position")
        {
            using var store = PositionStore.Open(path, flusher);
            Assert.False(store.WasBlank);
            Assert.Empty(store.All());
        }
        else
        {
            using var store = GroupAckStore.Open(path, initialFloor: 7, flusher: flusher);
            Assert.False(store.WasBlank);
            Assert.Equal(7, store.Floor);
            Assert.Equal(7, GroupAckStore.ReadFloor(path));
        }

        // While it was being made, its name did not exist yet, and the temporary file already held its header, whole.
        Assert.Equal([$"not named, temporary {StateFileContents.State} of {length} bytes"], seen);
        Assert.False(File.Exists(path + Creating));
        Assert.Equal(magic, BinaryPrimitives.ReadInt64LittleEndian(File.ReadAllBytes(path)));
    }

    [Fact]
    public async Task What_an_interrupted_creation_left_under_its_temporary_name_is_removed_when_the_broker_opens()
    {
        await using var f = await BrokerFixture.StartAsync();
        var b = f.Broker;
        b.CreateTopic("jobs");
        await b.PublishAsync("jobs", Encoding.UTF8.GetBytes("job0"));
        using (b.JoinGroup("jobs", "workers"))
        using (var keeper = b.Subscribe("jobs", SubscriptionOptions.Default with { DurableName = "keeper", Start = StartPosition.Committed }))
        {
            keeper.Commit("jobs", 1);
        }

        var subscriptions = Path.Combine(f.DataDirectory, "subscriptions");
        var groups = Path.Combine(f.DataDirectory, "topics", "jobs", "groups");
        string[] leftovers =
        [
            Path.Combine(subscriptions, "lost.pos" + Creating),
            Path.Combine(groups, "lost.state" + Creating),
        ];
        await f.RestartAsync(whileClosed: () =>
        {
            foreach (var leftover in leftovers)
            {
                File.WriteAllBytes(leftover, new byte[4096]); // cut short by the crash, never renamed
            }
        });

        Assert.All(leftovers, l => Assert.False(File.Exists(l), $"{l} is left after the broker opened"));
        Assert.Equal(["keeper.pos"], Directory.GetFiles(subscriptions).Select(Path.GetFileName));
        Assert.Equal(["workers.state"], Directory.GetFiles(groups).Select(Path.GetFileName));
        Assert.DoesNotContain(f.Broker.RecoveryReports, r => r.Contains("lost", StringComparison.Ordinal));
        using var again = f.Broker.Subscribe("jobs", SubscriptionOptions.Default with { DurableName = "keeper", Start = StartPosition.Committed });
        Assert.Equal(1, again.CommittedOffset("jobs"));
    }

    /// <summary>
    /// An operator removing a subscription's position file (the documented way to start it anew) or a group's state
    /// while a client subscribes or joins under that name: the file the open found is gone when it opens it. It is made
    /// anew, as a missing one is, and the subscription or the group starts anew from its start position.
    /// </summary>
    [Theory]
    [InlineData("position")]
    [InlineData("group")]
    public async Task A_state_file_removed_between_its_check_and_its_open_is_made_anew(string kind)
    {
        await using var f = await BrokerFixture.StartAsync();
        f.Broker.CreateTopic("jobs", s_fsynced); // a group's state is synced, and seen by the hook, on an Fsynced topic
        for (var i = 0; i < 3; i++)
        {
            await f.Broker.PublishAsync("jobs", Encoding.UTF8.GetBytes($"job{i}"));
        }

        var path = StateFilePath(f, kind);
        await MakeStateFileAsync(f, kind, path);
        var opened = new List<string>();
        f.Broker.StateFlusher.Opening = p =>
        {
            if (p != path)
            {
                return;
            }

            lock (opened)
            {
                opened.Add(File.Exists(p) ? "there" : "gone");
                if (opened.Count == 1)
                {
                    File.Delete(p); // the operator's removal, after the open found the file and before it opens it
                }
            }
        };

        if (kind == "position")
        {
            using var again = f.Broker.Subscribe("jobs", SubscriptionOptions.Default with { DurableName = "fresh", Start = StartPosition.Earliest });
            Assert.Null(again.CommittedOffset("jobs")); // anew: what it had committed went with its file
            Assert.Equal(PositionStore.Magic, BinaryPrimitives.ReadInt64LittleEndian(File.ReadAllBytes(path)));
        }
        else
        {
            using var member = f.Broker.JoinGroup("jobs", "workers", GroupOptions.Default with { Start = StartPosition.Earliest });
            Assert.Equal(0, Consume.FetchOne(member, "job0 again: the group starts anew").Offset);
            Assert.Equal(GroupAckStore.Magic, BinaryPrimitives.ReadInt64LittleEndian(File.ReadAllBytes(path)));
        }

        Assert.Equal(["there", "there"], opened); // found, removed, then made anew and opened
        Assert.False(File.Exists(path + Creating));
    }

    /// <summary>A file removed each time it is made is not made for ever: the open gives up after a few tries, with a storage error naming it.</summary>
    [Fact]
    public async Task A_state_file_removed_each_time_it_is_made_fails_the_subscribe_after_a_few_tries()
    {
        await using var f = await BrokerFixture.StartAsync();
        f.Broker.CreateTopic("jobs");
        var path = Path.Combine(f.DataDirectory, "subscriptions", "fresh.pos");
        var removals = 0;
        f.Broker.StateFlusher.Opening = p =>
        {
            if (p == path && File.Exists(p))
            {
                Interlocked.Increment(ref removals);
                File.Delete(p);
            }
        };

        var e = Assert.Throws<BrokerException>(() => f.Broker.Subscribe("jobs", SubscriptionOptions.Default with { DurableName = "fresh" }));
        Assert.Equal(BrokerErrorCode.StorageError, e.Code);
        Assert.Contains(path, e.Message, StringComparison.Ordinal);
        Assert.Contains("was removed each time it was found or made (3 times) before it could be opened", e.Message, StringComparison.Ordinal);
        Assert.InRange(removals, 1, 10);

        f.Broker.StateFlusher.Opening = null;
        using var s = f.Broker.Subscribe("jobs", SubscriptionOptions.Default with { DurableName = "fresh" });
        Assert.True(File.Exists(path));
    }

    /// <summary>
    /// An operator removing a state file's temporary file (<c>&lt;name&gt;.creating</c>) while it is being made, alone
    /// or together with the file itself (<c>rm fresh.pos*</c>, the file removed after the open found it, then the
    /// temporary file of the one made anew): the rename finds nothing to rename, and the file is made anew, as a
    /// removed one is, not refused with the rename's "Could not find file" naming the temporary file.
    /// </summary>
    [Theory]
    [InlineData("position", false)]
    [InlineData("position", true)]
    [InlineData("group", false)]
    [InlineData("group", true)]
    public async Task A_state_files_temporary_file_removed_while_it_is_made_is_made_anew(string kind, bool fileRemovedToo)
    {
        await using var f = await BrokerFixture.StartAsync();
        f.Broker.CreateTopic("jobs", s_fsynced); // a group's state is synced, and seen by the hooks, on an Fsynced topic
        for (var i = 0; i < 3; i++)
        {
            await f.Broker.PublishAsync("jobs", Encoding.UTF8.GetBytes($"job{i}"));
        }

        var path = StateFilePath(f, kind);
        if (fileRemovedToo)
        {
            await MakeStateFileAsync(f, kind, path);
        }

        var steps = new List<string>();
        f.Broker.StateFlusher.Opening = p =>
        {
            if (p != path)
            {
                return;
            }

            lock (steps)
            {
                steps.Add("open " + (File.Exists(p) ? "there" : "gone"));
                if (fileRemovedToo && steps.Count == 1)
                {
                    File.Delete(p); // the operator's removal of the file, after the open found it and before it opens it
                }
            }
        };
        f.Broker.StateFlusher.Creating = p =>
        {
            if (p != path)
            {
                return;
            }

            lock (steps)
            {
                steps.Add("made");
                if (steps.Count(x => x == "made") == 1)
                {
                    File.Delete(p + Creating); // and of the temporary file of the one made in its place, before its rename
                }
            }
        };

        if (kind == "position")
        {
            using var again = f.Broker.Subscribe("jobs", SubscriptionOptions.Default with { DurableName = "fresh", Start = StartPosition.Earliest });
            Assert.Null(again.CommittedOffset("jobs")); // anew
            Assert.Equal(PositionStore.Magic, BinaryPrimitives.ReadInt64LittleEndian(File.ReadAllBytes(path)));
        }
        else
        {
            using var member = f.Broker.JoinGroup("jobs", "workers", GroupOptions.Default with { Start = StartPosition.Earliest });
            Assert.Equal(0, Consume.FetchOne(member, "job0: the group starts anew").Offset);
            Assert.Equal(GroupAckStore.Magic, BinaryPrimitives.ReadInt64LittleEndian(File.ReadAllBytes(path)));
        }

        // (found, removed,) made, its temporary file removed, found gone, made anew and opened
        Assert.Equal(fileRemovedToo ? ["open there", "made", "open gone", "made", "open there"] : ["made", "open gone", "made", "open there"], steps);
        Assert.False(File.Exists(path + Creating));
    }

    /// <summary>
    /// A rename refused for another reason than a file taking the name or the temporary file going (here a directory
    /// made at the name, which is no state file) is refused naming both files, and the temporary file is removed.
    /// </summary>
    [Fact]
    public void A_rename_refused_otherwise_names_the_file_and_its_temporary_file()
    {
        using var dir = new TempDirectory();
        var path = dir.Combine("sub.pos");
        var flusher = new StateFileFlusher { Creating = p => Directory.CreateDirectory(p) };

        var e = Assert.ThrowsAny<IOException>(() => PositionStore.Open(path, flusher));
        Assert.StartsWith($"{path} could not be renamed into place from {path + Creating}, which was written whole: ", e.Message, StringComparison.Ordinal);
        Assert.False(File.Exists(path + Creating));
    }

    /// <summary>
    /// A temporary file removed each time it is made is not made for ever: the subscribe fails after a few tries with a
    /// storage error naming the file and saying it was removed, and the same subscribe succeeds once that stops.
    /// </summary>
    [Fact]
    public async Task A_temporary_file_removed_each_time_it_is_made_fails_the_subscribe_saying_so()
    {
        await using var f = await BrokerFixture.StartAsync();
        f.Broker.CreateTopic("jobs");
        var path = Path.Combine(f.DataDirectory, "subscriptions", "fresh.pos");
        var removals = 0;
        f.Broker.StateFlusher.Creating = p =>
        {
            if (p == path)
            {
                Interlocked.Increment(ref removals);
                File.Delete(p + Creating);
            }
        };

        var e = Assert.Throws<BrokerException>(() => f.Broker.Subscribe("jobs", SubscriptionOptions.Default with { DurableName = "fresh" }));
        Assert.Equal(BrokerErrorCode.StorageError, e.Code);
        Assert.Contains($"its position file {path} cannot be opened: {path} was removed each time it was found or made (3 times) before it could be opened", e.Message, StringComparison.Ordinal);
        Assert.Equal(3, removals);
        Assert.False(File.Exists(path));
        Assert.False(File.Exists(path + Creating));

        f.Broker.StateFlusher.Creating = null;
        using var s = f.Broker.Subscribe("jobs", SubscriptionOptions.Default with { DurableName = "fresh" });
        Assert.True(File.Exists(path));
    }

    /// <summary>The state file of <paramref name="kind"/>: subscription fresh's position file, or group workers' state of topic jobs.</summary>
    private static string StateFilePath(BrokerFixture f, string kind) => kind == "position"
        ? Path.Combine(f.DataDirectory, "subscriptions", "fresh.pos")
        : Path.Combine(f.DataDirectory, "topics", "jobs", "groups", "workers.state");

    /// <summary>Makes <paramref name="path"/> with a commit (position 2) or an ack (floor 1), then restarts the broker so it is closed.</summary>
    private static async Task MakeStateFileAsync(BrokerFixture f, string kind, string path)
    {
        if (kind == "position")
        {
            using var s = f.Broker.Subscribe("jobs", SubscriptionOptions.Default with { DurableName = "fresh", Start = StartPosition.Earliest });
            s.Commit("jobs", 2);
        }
        else
        {
            using var member = f.Broker.JoinGroup("jobs", "workers", GroupOptions.Default with { Start = StartPosition.Earliest });
            var first = Consume.FetchOne(member, "the first job");
            Assert.True(member.Ack(first.Offset, first.DeliveryCount));
            await Eventually.TrueAsync(() => GroupAckStore.ReadFloor(path) == 1, "the group's ack floor 1 in its state file");
        }

        await f.RestartAsync(); // the group's state is opened again only by its next join
        Assert.True(File.Exists(path), $"{path} exists before the test removes it");
    }
}
