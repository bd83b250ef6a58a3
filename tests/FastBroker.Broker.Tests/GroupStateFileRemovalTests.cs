using System.Collections.Concurrent;
using System.Text;
using FastBroker.Engine;
using FastBroker.Testing;
using static FastBroker.BrokerTests.Consume;

namespace FastBroker.BrokerTests;

/// <summary>
/// A work-queue group's state file removed while the group is open (docs/broker.md, "Subscriptions and work-queue
/// groups"): the group keeps its mapping of the removed file, so without a check every ack from then on would go to no
/// file anyone can open and be dropped when the group closes, and the next open would deliver from the group's start
/// again. The broker finds the removal (at the timer's check, or when the group closes), writes the group's state again
/// at its path and says so.
/// </summary>
public sealed class GroupStateFileRemovalTests
{
    private const string Removed = "was removed while the group was open";

    [Fact]
    public async Task A_group_state_removed_while_the_group_is_open_is_written_again_when_the_group_closes_and_no_ack_is_lost()
    {
        var log = new ConcurrentQueue<string>();
        await using var f = await BrokerFixture.StartAsync(o => o with { Log = log.Enqueue });
        f.Broker.StateFileCheckInterval = Timeout.InfiniteTimeSpan; // only the close checks
        var path = await AckThreeRemoveAckThreeAsync(f);
        Assert.DoesNotContain(log, l => l.Contains(Removed, StringComparison.Ordinal));

        await f.RestartAsync(o => o with { Log = log.Enqueue });
        await AssertRedeliversOnlyUnackedAsync(f, "the group closed by the broker's close");
        AssertLoggedRewritten(log, path);
    }

    [Fact]
    public async Task A_group_state_removed_while_the_group_is_open_is_written_again_by_the_timer_and_later_acks_reach_it()
    {
        var log = new ConcurrentQueue<string>();
        await using var f = await BrokerFixture.StartAsync(o => o with { Log = log.Enqueue });
        f.Broker.StateFileCheckInterval = TimeSpan.FromMilliseconds(50);
        var path = StatePath(f);
        await AckThreeRemoveAckThreeAsync(f, then: member =>
        {
            // The line follows the file's rename into place.
            Eventually.True(() => log.Any(l => l.Contains(Removed, StringComparison.Ordinal)), "the timer finds workers.state removed while the group is open", TimeSpan.FromSeconds(30));
            AssertLoggedRewritten(log, path);
            Assert.Equal(6, GroupAckStore.ReadFloor(path)); // the acks made after the removal are in it

            // An ack from now on goes to the file at the path: the open group uses it.
            var next = FetchOne(member, "job 6 is delivered");
            Assert.True(member.Ack(next.Offset, next.DeliveryCount));
            Assert.Equal(7, GroupAckStore.ReadFloor(path));
        });

        await f.RestartAsync(o => o with { Log = log.Enqueue });
        Assert.Single(log, l => l.Contains(Removed, StringComparison.Ordinal)); // the close found nothing more
        await AssertRedeliversOnlyUnackedAsync(f, "the timer's check", firstUnacked: 7);
    }

    [Fact]
    public async Task A_file_put_at_the_removed_group_state_path_is_left_as_it_is_and_read_by_the_next_open()
    {
        if (MappedStateFile.SystemRemovalCheck != MappedStateFile.RemovalCheck.ProcFd)
        {
            return; // elsewhere a removal is told only while nothing is at the path (the check's own test)
        }

        var log = new ConcurrentQueue<string>();
        await using var f = await BrokerFixture.StartAsync(o => o with { Log = log.Enqueue });
        f.Broker.StateFileCheckInterval = Timeout.InfiniteTimeSpan; // no check between the removal and the file put back
        var path = StatePath(f);
        byte[] restored = [];
        await AckThreeRemoveAckThreeAsync(f, afterRemoval: () =>
        {
            // The operator puts back a copy taken at floor 1 (a backup, say): the group must not overwrite it.
            var image = new byte[GroupAckStore.FileLength()];
            BitConverter.TryWriteBytes(image.AsSpan(0), GroupAckStore.Magic);
            BitConverter.TryWriteBytes(image.AsSpan(8), 1L);
            BitConverter.TryWriteBytes(image.AsSpan(GroupAckStore.FloorSlot * 8), 1L);
            File.WriteAllBytes(path, image);
            restored = image;
        }, then: _ =>
        {
            f.Broker.StateFileCheckInterval = TimeSpan.FromMilliseconds(50);
            Eventually.True(() => log.Any(l => l.Contains("another file is at that path now", StringComparison.Ordinal)), "the timer finds workers.state removed and another file at its path", TimeSpan.FromSeconds(30));
        });

        Assert.Equal(restored, File.ReadAllBytes(path)); // left as it is while the group is open
        await f.RestartAsync(o => o with { Log = log.Enqueue });
        Assert.Equal(restored, File.ReadAllBytes(path));
        var lines = log.Where(l => l.Contains(Removed, StringComparison.Ordinal)).ToArray();
        Assert.True(
            lines.Length == 2 && lines[0].Contains("are dropped when it closes", StringComparison.Ordinal) && lines[1].Contains("are dropped now that it closed", StringComparison.Ordinal),
            $"expected one line from the timer's checks and one from the close; log: {string.Join(" | ", log)}");
        await AssertRedeliversOnlyUnackedAsync(f, "another file put at its path", firstUnacked: 1); // the file put there says floor 1
    }

    [Fact]
    public void A_removed_state_file_is_told_by_each_check_this_system_has_and_its_bytes_are_written_again_only_at_a_free_path()
    {
        using var dir = new TempDirectory();
        var path = Path.Combine(dir.Path, "groups", "g.state");
        using var file = MappedStateFile.Open(path, 4096, header: [GroupAckStore.Magic, 1, 42]);
        var checks = MappedStateFile.SystemRemovalCheck == MappedStateFile.RemovalCheck.ProcFd
            ? new[] { MappedStateFile.RemovalCheck.ProcFd, MappedStateFile.RemovalCheck.PathExists }
            : [MappedStateFile.RemovalCheck.PathExists];
        Assert.All(checks, c => Assert.False(file.WasRemoved(c), $"{c}: the file is at its path"));

        File.Delete(path);
        Assert.All(checks, c => Assert.True(file.WasRemoved(c), $"{c}: the file was removed and nothing is at its path"));

        File.WriteAllBytes(path, [1, 2, 3]);
        Assert.Null(file.CopyToPath()); // another file at the path is not overwritten
        Assert.Equal([1, 2, 3], File.ReadAllBytes(path));
        Assert.False(file.WasRemoved(MappedStateFile.RemovalCheck.PathExists)); // the stat cannot tell another file from it
        if (checks.Contains(MappedStateFile.RemovalCheck.ProcFd))
        {
            Assert.True(file.WasRemoved(MappedStateFile.RemovalCheck.ProcFd), "the readlink tells the removal once another file is at the path");
        }

        File.Delete(path);
        file.Write(3, 7); // a store into the removed file, before the copy
        using var copy = file.CopyToPath();
        Assert.NotNull(copy);
        Assert.Equal(42, GroupAckStore.ReadFloor(path));
        Assert.Equal(7, copy.Read(3));
        Assert.All(checks, c => Assert.False(copy.WasRemoved(c), $"{c}: the copy is at the path"));
        Assert.False(File.Exists(path + MappedStateFile.CreatingSuffix));
    }

    /// <summary>
    /// Publishes ten jobs, has a member of group 'workers' ack 0 to 2, removes the group's state file (then runs
    /// <paramref name="afterRemoval"/>), acks 3 to 5, runs <paramref name="then"/> and leaves; returns the file's path.
    /// </summary>
    private static async Task<string> AckThreeRemoveAckThreeAsync(BrokerFixture f, Action? afterRemoval = null, Action<WorkQueueMember>? then = null)
    {
        var b = f.Broker;
        b.CreateTopic("jobs");
        for (var i = 0; i < 10; i++)
        {
            await b.PublishAsync("jobs", Encoding.UTF8.GetBytes($"job{i}"));
        }

        var path = StatePath(f);
        using var member = b.JoinGroup("jobs", "workers", GroupOptions.Default with { Prefetch = 6 });
        var jobs = FetchMany(member, 6, "jobs 0 to 5 are delivered");
        foreach (var job in jobs.Take(3))
        {
            Assert.True(member.Ack(job.Offset, job.DeliveryCount));
        }

        Assert.Equal(3, GroupAckStore.ReadFloor(path));
        File.Delete(path); // the operator's removal, while the group is open
        afterRemoval?.Invoke();
        foreach (var job in jobs.Skip(3))
        {
            Assert.True(member.Ack(job.Offset, job.DeliveryCount)); // the group goes on with its own state
        }

        then?.Invoke(member);
        return path;
    }

    private static string StatePath(BrokerFixture f) => Path.Combine(f.DataDirectory, "topics", "jobs", "groups", "workers.state");

    private static void AssertLoggedRewritten(ConcurrentQueue<string> log, string path)
    {
        var line = log.FirstOrDefault(l => l.Contains("group 'workers': its state file", StringComparison.Ordinal));
        Assert.True(
            line is not null && line.Contains($"{path} {Removed}", StringComparison.Ordinal) && line.Contains("written again at that path", StringComparison.Ordinal),
            $"no line said workers.state was removed while the group was open and written again; log: {string.Join(" | ", log)}");
    }

    /// <summary>Joins 'workers' again after the restart: only the jobs never acked (and a marker) may come.</summary>
    private static async Task AssertRedeliversOnlyUnackedAsync(BrokerFixture f, string found, long firstUnacked = 6)
    {
        using var again = f.Broker.JoinGroup("jobs", "workers", GroupOptions.Default with { Prefetch = 100 });
        var marker = await f.Broker.PublishAsync("jobs", Encoding.UTF8.GetBytes("marker"));
        var got = new Collected();
        Eventually.True(() =>
        {
            var r = new Recorder(got);
            again.Fetch(100, ref r);
            return got.Items.Any(x => x.Offset == marker);
        }, "the marker published after the join is delivered", TimeSpan.FromSeconds(30));

        var offsets = got.Items.Select(x => x.Offset).Order().ToArray();
        long[] expected = [.. Enumerable.Range((int)firstUnacked, 10 - (int)firstUnacked).Select(o => (long)o), marker];
        Assert.True(
            expected.SequenceEqual(offsets),
            $"after workers.state was removed while the group was open ({found}), the next open delivered [{string.Join(", ", offsets)}], expected only the jobs never acked [{string.Join(", ", expected)}]");
    }
}
