using System.Text;
using FastBroker.Engine;
using FastBroker.Testing;

namespace FastBroker.ReplicationTests.Failover;

/// <summary>
/// The standby's copy of a work-queue group's state is as durable as its copies of the journals (which it always
/// syncs): it is updated in place, through a mapping msynced in the background, not replaced by a new file renamed over
/// it unsynced (which a power loss can leave empty on a file system that does not write a renamed file's data first).
/// Observed twice: a reader holding the copy open sees the update (it was not replaced), and the page cache
/// (<see cref="MappedPages.FileDirtyKb"/>) has the file's pages clean soon after, before the kernel's writeback
/// (<c>vm.dirty_expire_centisecs</c>, 30 s) would have written them. Only the first can fail here on ext4: its
/// replace-by-rename heuristic starts writing a file renamed over another at once, without a sync.
/// </summary>
public sealed class StandbyStateSyncTests
{
    private static TimeSpan SyncDeadline => TimeSpan.FromSeconds(Math.Min(10, MappedPages.WritebackAge().TotalSeconds / 3));

    [Fact]
    public async Task The_standby_syncs_the_group_state_it_receives()
    {
        using var dir = new TempDirectory();
        var (a, b) = await InProcessPair.StartAsync(dir, BrokerOptions.Default);
        await using (a)
        await using (b)
        {
            var primary = a.Broker!;
            primary.CreateTopic("jobs", TopicOptions.Default with { Durability = Durability.Fsynced, Acks = AckMode.StandbyReceived, SegmentBytes = 4L << 20 });
            await primary.PublishAsync("jobs", Encoding.UTF8.GetBytes("job0"));
            await primary.PublishAsync("jobs", Encoding.UTF8.GetBytes("job1"));
            using var member = primary.JoinGroup("jobs", "workers", GroupOptions.Default);

            // The group's state arrives whole (a new file on the standby) with the next heartbeat.
            var group = Path.Combine(dir.Combine("b"), "topics", "jobs", "groups", "workers.state");
            await Eventually.TrueAsync(() => GroupAckStore.ReadFloor(group) == 0, "the standby holds the group's state", TimeSpan.FromSeconds(30));
            Assert.True(await WaitCleanAsync(group), $"the standby's copy of the group state still has {MappedPages.FileDirtyKb(group)} kB dirty {SyncDeadline.TotalSeconds:0} s after it arrived");

            // An ack: sent whole again within 20 ms, stored into the same copy (a reader holding it open sees it) and
            // synced again.
            using var held = File.OpenHandle(group, FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete);
            var first = default(FirstMessage);
            await Eventually.TrueAsync(() => first.Got || member.Fetch(1, ref first) > 0, "job0 is delivered", TimeSpan.FromSeconds(30));
            Assert.True(member.Ack(first.Offset, first.DeliveryCount));
            await Eventually.TrueAsync(() => GroupAckStore.ReadFloor(group) == 1, "the standby holds the group's floor 1", TimeSpan.FromSeconds(30));
            var inPlace = await WaitAsync(() => FloorThrough(held) == 1, TimeSpan.FromSeconds(10));
            Assert.True(inPlace, $"the standby's copy of the group state was replaced, not updated: the file held open still has floor {FloorThrough(held)}");
            Assert.True(await WaitCleanAsync(group), $"the standby's copy of the group state still has {MappedPages.FileDirtyKb(group)} kB dirty {SyncDeadline.TotalSeconds:0} s after the ack arrived");
        }
    }

    private static long FloorThrough(Microsoft.Win32.SafeHandles.SafeFileHandle file)
    {
        Span<byte> floor = stackalloc byte[8];
        RandomAccess.Read(file, floor, 16); // slot 2
        return System.Buffers.Binary.BinaryPrimitives.ReadInt64LittleEndian(floor);
    }

    private static Task<bool> WaitCleanAsync(string path) => WaitAsync(() => MappedPages.FileDirtyKb(path) == 0, SyncDeadline);

    private static async Task<bool> WaitAsync(Func<bool> condition, TimeSpan deadline)
    {
        try
        {
            await Eventually.TrueAsync(condition, "", deadline);
            return true;
        }
        catch (TimeoutException)
        {
            return false;
        }
    }

    private struct FirstMessage : IMessageHandler
    {
        public bool Got;
        public long Offset;
        public int DeliveryCount;

        public void OnMessage(scoped in MessageView message)
        {
            (Got, Offset, DeliveryCount) = (true, message.Offset, message.DeliveryCount);
        }
    }
}
