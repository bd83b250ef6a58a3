using System.Text;
using FastBroker.Engine;
using FastBroker.Testing;
using static FastBroker.BrokerTests.Consume;

namespace FastBroker.BrokerTests;

/// <summary>
/// The state files beside the journals (work-queue group state, durable subscription positions) are made durable on
/// the terms of their topic: on an <c>Fsynced</c> topic an ack or a commit is msynced, as the topic's messages are.
/// A power loss cannot be tested here; what is observed is the kernel's own account of the mapping
/// (<see cref="MappedPages"/>): its pages stay dirty until an msync writes them back, or until the kernel's writeback
/// does after <c>vm.dirty_expire_centisecs</c> (30 s), longer than these tests wait.
/// </summary>
public class StateFileSyncTests
{
    private static readonly TopicOptions s_fsynced = TopicOptions.Default with { Durability = Durability.Fsynced, SegmentBytes = 4L << 20 };

    // Well under the kernel's writeback age (30 s by default), so only an msync can clean the pages in time.
    private static TimeSpan SyncDeadline => TimeSpan.FromSeconds(Math.Min(10, MappedPages.WritebackAge().TotalSeconds / 3));

    [Fact]
    public async Task An_ack_on_an_fsynced_topic_is_msynced_to_the_group_state_file()
    {
        await using var f = await BrokerFixture.StartAsync();
        var b = f.Broker;
        b.CreateTopic("jobs", s_fsynced);
        using var member = b.JoinGroup("jobs", "workers", GroupOptions.Default);
        await b.PublishAsync("jobs", Encoding.UTF8.GetBytes("job0"));
        var job = FetchOne(member, "the job is delivered");
        Assert.True(member.Ack(job.Offset, job.DeliveryCount));

        var path = Path.Combine(f.DataDirectory, "topics", "jobs", "groups", "workers.state");
        Assert.Equal(1, GroupAckStore.ReadFloor(path)); // the ack is in the file (the page cache)...
        Assert.NotNull(MappedPages.DirtyKb(path));

        // ...and on disk soon after: the broker's state flusher msyncs it (no ack waits for it, there is no answer).
        var clean = Eventually.TryWait(() => MappedPages.DirtyKb(path) == 0, SyncDeadline);
        Assert.True(clean, $"the group state file still has {MappedPages.DirtyKb(path)} kB dirty {SyncDeadline.TotalSeconds:0} s after the ack on an Fsynced topic: the ack would not survive a power loss");
    }

    [Fact]
    public async Task A_commit_on_an_fsynced_topic_is_msynced_when_CommitAsync_completes()
    {
        await using var f = await BrokerFixture.StartAsync();
        var b = f.Broker;
        b.CreateTopic("audit", s_fsynced);
        await b.PublishAsync("audit", Encoding.UTF8.GetBytes("a0"));
        await b.PublishAsync("audit", Encoding.UTF8.GetBytes("a1"));
        using var sub = b.Subscribe("audit", new SubscriptionOptions { DurableName = "auditor", Start = StartPosition.Earliest });
        Drain(sub, 2);

        await sub.CommitAsync("audit", 2);

        // Answered only once on disk: no waiting here.
        var path = Path.Combine(f.DataDirectory, "subscriptions", "auditor.pos");
        Assert.Equal(2, sub.CommittedOffset("audit"));
        var dirty = MappedPages.DirtyKb(path);
        Assert.True(dirty == 0, $"the position file has {dirty} kB dirty when CommitAsync on an Fsynced topic completed: the commit would not survive a power loss");

        // A commit without waiting (Commit) is msynced in the background.
        sub.Commit("audit", 1);
        var clean = Eventually.TryWait(() => MappedPages.DirtyKb(path) == 0, SyncDeadline);
        Assert.True(clean, $"the position file still has {MappedPages.DirtyKb(path)} kB dirty {SyncDeadline.TotalSeconds:0} s after Commit on an Fsynced topic");
    }

    [Fact]
    public async Task A_CommitAsync_whose_subscription_closes_before_its_sync_is_requested_fails_Closed_naming_the_position_file()
    {
        await using var f = await BrokerFixture.StartAsync();
        var b = f.Broker;
        b.CreateTopic("audit", s_fsynced);
        await b.PublishAsync("audit", Encoding.UTF8.GetBytes("a0"));
        var sub = b.Subscribe("audit", new SubscriptionOptions { DurableName = "auditor", Start = StartPosition.Earliest });
        var path = Path.Combine(f.DataDirectory, "subscriptions", "auditor.pos");

        // The subscription is closed by another thread (its connection's close, the broker's shutdown) once the commit is
        // stored and before its msync is requested: the wait is for a generation requested after the close.
        sub.CommitStored = (_, _) => Assert.True(Task.Run(sub.Dispose).Wait(TimeSpan.FromSeconds(30)), "the subscription's close did not return");
        var commit = sub.CommitAsync("audit", 1).AsTask();

        var failed = await Assert.ThrowsAsync<BrokerException>(() => commit.WaitAsync(TimeSpan.FromSeconds(30)));
        Assert.Equal(BrokerErrorCode.Closed, failed.Code);
        Assert.Contains(path, failed.Message, StringComparison.Ordinal);
    }
}
