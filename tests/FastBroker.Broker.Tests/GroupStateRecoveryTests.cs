using System.Collections.Concurrent;
using System.Text;
using FastBroker.Engine;
using FastBroker.Testing;
using static FastBroker.BrokerTests.Consume;

namespace FastBroker.BrokerTests;

/// <summary>
/// A work-queue group whose state file exists but holds nothing (its data lost to a power loss after the file was
/// created or renamed, as on a standby's copy) is not a new group: its start position would skip what it had not acked.
/// </summary>
public class GroupStateRecoveryTests
{
    [Theory]
    [InlineData("empty")]
    [InlineData("zeroed")]
    [InlineData("cut short")]
    public async Task A_group_whose_state_file_holds_no_state_redelivers_from_the_oldest_message_and_says_so(string damage)
    {
        var log = new ConcurrentQueue<string>();
        await using var f = await BrokerFixture.StartAsync(o => o with { Log = log.Enqueue });
        var b = f.Broker;
        b.CreateTopic("jobs");
        await b.PublishAsync("jobs", Encoding.UTF8.GetBytes("before0"));
        await b.PublishAsync("jobs", Encoding.UTF8.GetBytes("before1"));

        // A group that starts at the head: it never sees 0 and 1; it gets 2..6 and acks 2 and 3.
        var latest = GroupOptions.Default with { Start = StartPosition.Latest };
        using (var member = b.JoinGroup("jobs", "workers", latest))
        {
            for (var i = 2; i < 7; i++)
            {
                await b.PublishAsync("jobs", Encoding.UTF8.GetBytes($"job{i}"));
            }

            foreach (var job in FetchMany(member, 5, "the five jobs are delivered"))
            {
                if (job.Offset < 4)
                {
                    Assert.True(member.Ack(job.Offset, job.DeliveryCount));
                }
            }
        }

        var path = Path.Combine(f.DataDirectory, "topics", "jobs", "groups", "workers.state");
        await f.RestartAsync(o => o with { Log = log.Enqueue }, whileClosed: () =>
        {
            var length = new FileInfo(path).Length;
            using var file = new FileStream(path, damage == "cut short" ? FileMode.Open : FileMode.Truncate, FileAccess.Write);
            if (damage == "zeroed")
            {
                file.SetLength(length); // the file's size survived, its data did not
            }
            else if (damage == "cut short")
            {
                file.SetLength(16); // its magic and version survived, its floor did not
            }
        });

        // Joined again with the same start (the head): the unacked 4, 5 and 6 must come back. A marker published after
        // the join ends the wait either way: the group reads in order, so everything before it has been handed out.
        using var again = f.Broker.JoinGroup("jobs", "workers", latest with { Prefetch = 100 });
        var marker = await f.Broker.PublishAsync("jobs", Encoding.UTF8.GetBytes("marker"));
        var got = new Collected();
        Eventually.True(() =>
        {
            var r = new Recorder(got);
            again.Fetch(100, ref r);
            return got.Items.Any(x => x.Offset == marker);
        }, "the marker published after the join is delivered", TimeSpan.FromSeconds(15));

        var offsets = got.Items.Select(x => x.Offset).Order().ToArray();
        Assert.True(new long[] { 4, 5, 6 }.All(offsets.Contains), $"the jobs never acked (4, 5, 6) were skipped: the group delivered only [{string.Join(", ", offsets)}] after its state file was {damage}");
        Assert.Equal([0L, 1L, 2L, 3L, 4L, 5L, 6L, marker], offsets); // from the oldest message kept: nothing says what was acked
        var report = f.Broker.RecoveryReports.FirstOrDefault(r => r.Contains("'workers'", StringComparison.Ordinal));
        Assert.True(report is not null && report.Contains("holds no state", StringComparison.Ordinal), $"no recovery report names the blank state file of group 'workers': [{string.Join("; ", f.Broker.RecoveryReports)}]");
        Assert.Contains(log, l => l.Contains("'workers'", StringComparison.Ordinal) && l.Contains("held no state", StringComparison.Ordinal));
    }

    /// <summary>
    /// A state file that is not a group's (a wrong magic: a damaged or foreign header; a short file that is not zeros; a
    /// file longer than a group state file)
    /// cannot say what the group acked: joining is refused with a typed error that names the file, says why and what to
    /// do, and leaves the file exactly as it was (a short one was padded with zeros before it was refused). The broker
    /// keeps serving, and the file, repaired, is joined at the floor it holds.
    /// </summary>
    [Theory]
    [InlineData("wrong magic")]
    [InlineData("short, wrong magic")]
    [InlineData("short, not zeros")]
    [InlineData("longer than a group state file")]
    public async Task Joining_a_group_whose_state_file_is_not_a_groups_is_refused_naming_the_file_and_leaves_it_as_it_was(string damage)
    {
        await using var f = await BrokerFixture.StartAsync();
        f.Broker.CreateTopic("jobs");
        using (var member = f.Broker.JoinGroup("jobs", "workers"))
        {
            for (var i = 0; i < 3; i++)
            {
                await f.Broker.PublishAsync("jobs", Encoding.UTF8.GetBytes($"job{i}"));
            }

            var first = FetchOne(member, "the first job");
            Assert.True(member.Ack(first.Offset, first.DeliveryCount));
            await Eventually.TrueAsync(() => f.Broker.GetSnapshot().Groups.Single().AckFloor == 1, "the ack floor reaches 1");
        }

        var path = Path.Combine(f.DataDirectory, "topics", "jobs", "groups", "workers.state");
        var saved = Array.Empty<byte>();
        await f.RestartAsync(whileClosed: () =>
        {
            saved = File.ReadAllBytes(path);
            byte[] damaged = damage switch
            {
                "wrong magic" => [.. "NOTSTATE"u8, .. saved.AsSpan(8)],
                "short, wrong magic" => [.. "NOTSTATE"u8, .. saved.AsSpan(8, 92)],
                "longer than a group state file" => [.. saved, .. new byte[8]],
                _ => "FBF\0"u8.ToArray(),
            };
            File.WriteAllBytes(path, damaged);
        });

        var before = File.ReadAllBytes(path);
        var reason = damage == "longer than a group state file"
            ? $"{saved.Length + 8} bytes, longer than a group state file's {saved.Length}: damaged, or not written by this version of FastBroker"
            : GroupAckStore.DescribeDamage(path);

        // Reported alike when the broker opened: not a group's state, joining refused until repaired or removed.
        var report = f.Broker.RecoveryReports.FirstOrDefault(r => r.Contains("'workers'", StringComparison.Ordinal));
        Assert.True(report is not null && report.Contains(reason, StringComparison.Ordinal) && report.Contains("repaired or removed", StringComparison.Ordinal), $"no recovery report names the damaged state file of group 'workers' with its reason ({reason}): [{string.Join("; ", f.Broker.RecoveryReports)}]");
        var e = Assert.Throws<BrokerException>(() => f.Broker.JoinGroup("jobs", "workers"));
        Assert.Equal(BrokerErrorCode.StorageError, e.Code);
        Assert.True(e.Message.Contains(path, StringComparison.Ordinal) && e.Message.Contains(reason, StringComparison.Ordinal) && e.Message.Contains("repair the file, or remove it", StringComparison.Ordinal), $"the refusal does not name the file ({path}), the reason ({reason}) and what to do: {e.Message}");
        var after = File.ReadAllBytes(path);
        Assert.True(before.AsSpan().SequenceEqual(after), $"the refused join changed the state file ({damage}): {before.Length} bytes before, {after.Length} after, first 8 bytes {Convert.ToHexString(after.AsSpan(0, Math.Min(8, after.Length)))}");
        Assert.Empty(f.Broker.GetSnapshot().Groups);

        // The broker keeps serving: publishes, another group, a second refusal alike.
        var fourth = await f.Broker.PublishAsync("jobs", "job3"u8.ToArray());
        using (var other = f.Broker.JoinGroup("jobs", "others"))
        {
            Assert.Equal([0L, 1L, 2L, fourth], FetchMany(other, 4, "the other group's jobs").Select(x => x.Offset).Order());
        }

        Assert.Equal(BrokerErrorCode.StorageError, Assert.Throws<BrokerException>(() => f.Broker.JoinGroup("jobs", "workers")).Code);

        // Repaired, it resumes at its floor (1): job1 is the first it had not acked.
        File.WriteAllBytes(path, saved);
        using var again = f.Broker.JoinGroup("jobs", "workers");
        Assert.Equal([1L, 2L, fourth], FetchMany(again, 3, "the jobs it had not acked").Select(x => x.Offset).Order());
    }

    /// <summary>
    /// A state file whose magic and ack floor survived but that is shorter than a group state file lost the done marks
    /// past its end: the broker pads it and joins it at its floor as before, and says so when it opens, since what the
    /// group had acked above its floor is delivered again.
    /// </summary>
    [Fact]
    public async Task A_group_state_file_cut_short_after_its_ack_floor_is_reported_when_the_broker_opens()
    {
        await using var f = await BrokerFixture.StartAsync();
        f.Broker.CreateTopic("jobs");
        using (var member = f.Broker.JoinGroup("jobs", "workers"))
        {
            for (var i = 0; i < 3; i++)
            {
                await f.Broker.PublishAsync("jobs", Encoding.UTF8.GetBytes($"job{i}"));
            }

            // Acked 0 and 2: floor 1, a done mark for 2 above it.
            foreach (var job in FetchMany(member, 3, "the three jobs are delivered").Where(j => j.Offset != 1))
            {
                Assert.True(member.Ack(job.Offset, job.DeliveryCount));
            }

            await Eventually.TrueAsync(() => f.Broker.GetSnapshot().Groups.Single().AckFloor == 1, "the ack floor reaches 1");
        }

        var path = Path.Combine(f.DataDirectory, "topics", "jobs", "groups", "workers.state");
        await f.RestartAsync(whileClosed: () =>
        {
            using var file = new FileStream(path, FileMode.Open, FileAccess.Write);
            file.SetLength(64); // its header (magic, version, floor) survived, its done marks did not
        });

        var report = f.Broker.RecoveryReports.FirstOrDefault(r => r.Contains("'workers'", StringComparison.Ordinal));
        Assert.True(report is not null && report.Contains("cut short", StringComparison.Ordinal) && report.Contains("64 of", StringComparison.Ordinal) && report.Contains("delivered again", StringComparison.Ordinal), $"no recovery report says the state file of group 'workers' was cut short (64 bytes) and what that means: [{string.Join("; ", f.Broker.RecoveryReports)}]");

        // No other change: joined at its floor (1); the done mark for 2 was lost with the file's end, so 2 comes again.
        using var again = f.Broker.JoinGroup("jobs", "workers");
        Assert.Equal([1L, 2L], FetchMany(again, 2, "the jobs above the floor").Select(x => x.Offset).Order());
    }

    /// <summary>
    /// A group's state file cut short after its ack floor while the broker runs (after the open's check, which reports
    /// and pads one found so then) is padded with zeros by the group's join: each is reported in the broker's log like
    /// the open's report, the first at once and then at most one line per 10 s with a count of those not logged.
    /// </summary>
    [Fact]
    public async Task A_group_state_file_cut_short_at_run_time_is_reported_at_its_join_at_most_once_per_interval()
    {
        var log = new ConcurrentQueue<string>();
        var clock = new ManualClock();
        await using var f = await BrokerFixture.StartAsync(o => o with { Log = log.Enqueue, LogClock = clock });
        f.Broker.CreateTopic("jobs");
        byte[] state;
        using (var member = f.Broker.JoinGroup("jobs", "template"))
        {
            await f.Broker.PublishAsync("jobs", Encoding.UTF8.GetBytes("job0"));
            var first = FetchOne(member, "the first job");
            Assert.True(member.Ack(first.Offset, first.DeliveryCount));
            await Eventually.TrueAsync(() => f.Broker.GetSnapshot().Groups.Single().AckFloor == 1, "the ack floor reaches 1");
            var template = Path.Combine(f.DataDirectory, "topics", "jobs", "groups", "template.state");
            using var file = new FileStream(template, FileMode.Open, FileAccess.Read, FileShare.ReadWrite);
            state = new byte[(GroupAckStore.HeaderSlots + 8) * 8]; // its header and 8 done marks: cut short after its floor
            file.ReadExactly(state);
        }

        const int groups = 5;
        RateLimitedLines.Repeat(clock, groups, i =>
        {
            var name = $"short{i}";
            var path = Path.Combine(f.DataDirectory, "topics", "jobs", "groups", name + ".state");
            File.WriteAllBytes(path, state);
            using var member = f.Broker.JoinGroup("jobs", name);
            Assert.Equal(GroupAckStore.FileLength(), new FileInfo(path).Length);
            Assert.Equal(1, f.Broker.GetSnapshot().Groups.Single(g => g.Group == name).AckFloor);
        });

        var lines = log.Where(l => l.Contains("'short", StringComparison.Ordinal) && l.Contains("cut short", StringComparison.Ordinal)).ToArray();
        if (RateLimitedLines.Violation(lines, groups, "group state files cut short at run time") is { } violation)
        {
            Assert.Fail(violation);
        }

        Assert.Contains("'short0'", lines[0], StringComparison.Ordinal);
        Assert.Contains($"({state.Length} of {GroupAckStore.FileLength()} bytes; its ack floor 1 is intact)", lines[0], StringComparison.Ordinal);
        Assert.Contains($"'short{groups - 1}'", lines[1], StringComparison.Ordinal);
    }

    /// <summary>
    /// Group state files that hold no state by the time their groups are first joined (emptied while the broker runs,
    /// after its open's check: a disk losing files' data) are each reported at the join, at most one line per 10 s over
    /// all groups, the first at once, the next with a count of those not logged: many such joins do not flood the log.
    /// </summary>
    [Fact]
    public async Task Group_state_files_holding_no_state_at_their_joins_are_reported_at_most_once_per_interval()
    {
        var log = new ConcurrentQueue<string>();
        var clock = new ManualClock();
        await using var f = await BrokerFixture.StartAsync(o => o with { Log = log.Enqueue, LogClock = clock });
        f.Broker.CreateTopic("jobs");
        await f.Broker.PublishAsync("jobs", Encoding.UTF8.GetBytes("job0"));

        const int groups = 5;
        RateLimitedLines.Repeat(clock, groups, i =>
        {
            var name = $"blank{i}";
            var path = Path.Combine(f.DataDirectory, "topics", "jobs", "groups", name + ".state");
            Directory.CreateDirectory(Path.GetDirectoryName(path)!);
            File.WriteAllBytes(path, []);
            using var member = f.Broker.JoinGroup("jobs", name, GroupOptions.Default with { Start = StartPosition.Latest });
            Assert.Equal(0, f.Broker.GetSnapshot().Groups.Single(g => g.Group == name).AckFloor); // the oldest kept, not the head
        });

        var lines = log.Where(l => l.Contains("'blank", StringComparison.Ordinal) && l.Contains("held no state", StringComparison.Ordinal)).ToArray();
        if (RateLimitedLines.Violation(lines, groups, "group state files holding no state at their joins") is { } violation)
        {
            Assert.Fail(violation);
        }

        Assert.Contains("'blank0'", lines[0], StringComparison.Ordinal);
        Assert.Contains($"'blank{groups - 1}'", lines[1], StringComparison.Ordinal);
    }
}
