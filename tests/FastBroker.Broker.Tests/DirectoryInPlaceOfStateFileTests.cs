using FastBroker.Testing;
using static FastBroker.BrokerTests.Consume;
using static FastBroker.BrokerTests.RetentionTests;

namespace FastBroker.BrokerTests;

/// <summary>
/// A directory where the broker's open expects a group's state file or a durable subscription's position file (an
/// operator's mistake, a restore gone wrong): the file cannot be read, which says nothing of what the group acked or
/// the subscription committed. The open must find it as it finds any unreadable state file: report it, hold retention
/// from the oldest message kept for a group, and refuse the join or subscribe until it is repaired, so that the
/// repaired file finds every message it had not acked or committed. A listing of files only (<c>EnumerateFiles</c>)
/// passed over it: nothing held retention for the group, which deleted what it had never acked.
/// </summary>
public class DirectoryInPlaceOfStateFileTests
{
    [Fact]
    public async Task A_directory_in_place_of_a_group_state_file_holds_retention_from_the_oldest_message_until_repaired()
    {
        await using var f = await BrokerFixture.StartAsync();
        f.Broker.CreateTopic("orders", SmallSegments);
        using (var member = f.Broker.JoinGroup("orders", "billing", GroupOptions.Default with { Prefetch = 256 }))
        {
            await PublishAsync(f.Broker, "orders", 0, Count);
            AckFirst(member, 1000);
            await Eventually.TrueAsync(() => f.Broker.GetSnapshot().Groups.Single().AckFloor == 1000, "the ack floor reaches 1000");
        }

        var path = Path.Combine(f.DataDirectory, "topics", "orders", "groups", "billing.state");
        var aside = Path.Combine(f.DataDirectory, "billing.state.saved");
        await f.RestartAsync(whileClosed: () =>
        {
            File.Move(path, aside);
            Directory.CreateDirectory(path);
        });

        var refused = Assert.Throws<BrokerException>(() => f.Broker.JoinGroup("orders", "billing"));
        Assert.Equal(BrokerErrorCode.StorageError, refused.Code);
        Assert.Contains(path, refused.Message, StringComparison.Ordinal);

        await PublishAsync(f.Broker, "orders", Count, 1000);
        var journal = JournalOf(f.Broker, "orders");
        SealAll(journal);
        for (var pass = 0; pass < 3; pass++)
        {
            var deleted = journal.ApplyRetention();
            Assert.True(deleted == 0 && journal.FirstOffset == 0, $"retention deleted up to offset {journal.FirstOffset} ({deleted} segment(s) in this pass) while a directory stood in place of the state file of group 'billing' (ack floor 1000)");
        }

        var report = f.Broker.RecoveryReports.FirstOrDefault(r => r.Contains("'billing'", StringComparison.Ordinal));
        Assert.True(report is not null && report.Contains("not a group state file", StringComparison.Ordinal) && report.Contains("holds retention", StringComparison.Ordinal), $"no recovery report names the unreadable state file of group 'billing': [{string.Join("; ", f.Broker.RecoveryReports)}]");

        // Repaired (the file put back), the group resumes at its floor: the messages it never acked were kept.
        await f.RestartAsync(whileClosed: () =>
        {
            Directory.Delete(path);
            File.Move(aside, path);
        });
        using var again = f.Broker.JoinGroup("orders", "billing", GroupOptions.Default with { Prefetch = 16 });
        var first = FetchOne(again, "the first message the group never acked");
        Assert.Equal((1000L, "m1000"), (first.Offset, first.Payload[..5]));
    }

    [Fact]
    public async Task A_directory_in_place_of_a_position_file_is_reported_and_refused_and_the_repaired_file_resumes_at_its_commit()
    {
        await using var f = await BrokerFixture.StartAsync();
        f.Broker.CreateTopic("audit", SmallSegments);
        await PublishAsync(f.Broker, "audit", 0, 100);
        using (var s = f.Broker.Subscribe("audit", new SubscriptionOptions { DurableName = "auditor", Start = StartPosition.Earliest }))
        {
            s.Commit("audit", 40);
        }

        var path = Path.Combine(f.DataDirectory, "subscriptions", "auditor.pos");
        var aside = Path.Combine(f.DataDirectory, "auditor.pos.saved");
        await f.RestartAsync(whileClosed: () =>
        {
            File.Move(path, aside);
            Directory.CreateDirectory(path);
        });

        var report = f.Broker.RecoveryReports.FirstOrDefault(r => r.Contains("'auditor'", StringComparison.Ordinal));
        Assert.True(report is not null && report.Contains(path, StringComparison.Ordinal) && report.Contains("refused until the file is repaired or removed", StringComparison.Ordinal), $"no recovery report names the unreadable position file of subscription 'auditor': [{string.Join("; ", f.Broker.RecoveryReports)}]");

        // Latest would skip every message it had not committed: refused, the directory left as it is.
        var refused = Assert.Throws<BrokerException>(() => f.Broker.Subscribe("audit", new SubscriptionOptions { DurableName = "auditor", Start = StartPosition.Committed }));
        Assert.Equal(BrokerErrorCode.StorageError, refused.Code);
        Assert.Contains(path, refused.Message, StringComparison.Ordinal);
        Assert.True(Directory.Exists(path), "the directory is left as it is");

        await f.RestartAsync(whileClosed: () =>
        {
            Directory.Delete(path);
            File.Move(aside, path);
        });
        using var resumed = f.Broker.Subscribe("audit", new SubscriptionOptions { DurableName = "auditor", Start = StartPosition.Committed });
        var c = new Collected();
        var r = new Recorder(c);
        Eventually.True(() =>
        {
            resumed.Fetch(100, ref r);
            return c.Items.Count >= 60;
        }, "the messages from its commit on");
        Assert.Equal(Enumerable.Range(40, 60).Select(i => (long)i), c.Items.Select(m => m.Offset));
    }

    /// <summary>
    /// A group's state file that is a symbolic link to a volume not mounted (its target missing) is no missing file: the
    /// state may come back. It is reported and refused naming the link and its target (not "missing", nor "removed each
    /// time it was found or made"), nothing is created through it, and once its target is back the group resumes at its
    /// floor.
    /// </summary>
    [Fact]
    public async Task A_group_state_file_linked_to_a_missing_target_is_refused_naming_the_link_and_resumes_once_the_target_is_back()
    {
        await using var f = await BrokerFixture.StartAsync();
        f.Broker.CreateTopic("jobs");
        using (var member = f.Broker.JoinGroup("jobs", "workers"))
        {
            await PublishAsync(f.Broker, "jobs", 0, 3);
            var job = FetchOne(member, "the first job");
            Assert.True(member.Ack(job.Offset, job.DeliveryCount));
            await Eventually.TrueAsync(() => f.Broker.GetSnapshot().Groups.Single().AckFloor == 1, "the ack floor reaches 1");
        }

        var path = Path.Combine(f.DataDirectory, "topics", "jobs", "groups", "workers.state");
        var volume = Path.Combine(f.DataDirectory, "volume");
        var target = Path.Combine(volume, "workers.state");
        var saved = Path.Combine(f.DataDirectory, "workers.state.saved");
        await f.RestartAsync(whileClosed: () =>
        {
            File.Move(path, saved);
            File.CreateSymbolicLink(path, target); // the volume is not mounted
        });

        var report = f.Broker.RecoveryReports.FirstOrDefault(r => r.Contains("'workers'", StringComparison.Ordinal));
        Assert.True(report is not null && report.Contains($"a symbolic link to {target}", StringComparison.Ordinal) && report.Contains("holds retention", StringComparison.Ordinal), $"no recovery report names the link of group 'workers' and its missing target: [{string.Join("; ", f.Broker.RecoveryReports)}]");

        var refused = Assert.Throws<BrokerException>(() => f.Broker.JoinGroup("jobs", "workers"));
        Assert.Equal(BrokerErrorCode.StorageError, refused.Code);
        Assert.True(refused.Message.Contains(path, StringComparison.Ordinal) && refused.Message.Contains($"a symbolic link to {target}, which is missing", StringComparison.Ordinal) && refused.Message.Contains("repair the file", StringComparison.Ordinal), refused.Message);
        Assert.Equal(target, new FileInfo(path).LinkTarget);
        Assert.False(Directory.Exists(volume), "nothing was created through the link");

        // The volume is back: the same broker joins the group at its floor, the jobs it had not acked delivered.
        Directory.CreateDirectory(volume);
        File.Move(saved, target);
        using var again = f.Broker.JoinGroup("jobs", "workers");
        Assert.Equal([1L, 2L], FetchMany(again, 2, "the jobs it had not acked").Select(x => x.Offset).Order());
    }
}
