using System.Collections.Concurrent;
using System.Text;
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
            using var file = new FileStream(path, FileMode.Truncate, FileAccess.Write);
            if (damage == "zeroed")
            {
                file.SetLength(length); // the file's size survived, its data did not
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
}
