using System.Buffers.Binary;
using System.Collections.Concurrent;
using FastBroker.Engine;
using FastBroker.Replication;
using FastBroker.Replication.Internal;
using FastBroker.Testing;

namespace FastBroker.ReplicationTests.Failover;

/// <summary>
/// A damaged copy of a work-queue group's state on the standby (its magic overwritten) is checked before the next
/// group state from the primary is stored into it: it is logged once, replaced by a new copy holding the primary's file
/// whole, and the link goes on (no reattach, no "link down"), as a damaged position copy is
/// (<see cref="StandbyPositionDamageTests"/>). Two in-process nodes, no witness, a 30 s heartbeat.
/// </summary>
public sealed class StandbyGroupStateDamageTests
{
    private const string Jobs = "groupdamage.jobs";
    private const string Workers = "topics/" + Jobs + "/groups/workers.state";
    private const long GroupMagic = 0x4B43_4150_5246_4246L; // "FBFRPACK"

    private static readonly TimeSpan s_deadline = TimeSpan.FromSeconds(30);

    [Fact]
    public async Task A_group_state_copy_damaged_while_the_link_is_up_is_replaced_by_the_primarys_file_without_a_reattach()
    {
        using var dir = new TempDirectory();
        var log = new List<string>();
        var (a, b) = await LoggedPair.StartAsync(dir, log);
        await using (a)
        await using (b)
        {
            var broker = a.Broker!;
            await PositionCopies.PublishAsync(broker, Jobs, 4);
            using var member = broker.JoinGroup(Jobs, "workers", prefetch: 4);
            var jobs = await ReceiveAsync(member, 4);
            Assert.True(member.Ack(jobs[0]));
            var copy = Path.Combine(dir.Combine("b"), Workers);
            await Eventually.TrueAsync(() => GroupAckStore.ReadFloor(copy) == 1, "b's copy of the group state holds ack floor 1", s_deadline);
            var welcomes = b.Replica!.Welcomes;
            var steps = Trace(b);

            Damage(copy); // b's mapping of it stays open
            Assert.True(member.Ack(jobs[1]));

            await AssertReplacedWithoutReattachAsync(a, b, welcomes, dir, log, steps, floor: 2);
        }
    }

    [Fact]
    public async Task A_group_state_copy_damaged_before_the_groups_first_state_reaches_it_is_replaced_by_the_primarys_file_without_a_reattach()
    {
        using var dir = new TempDirectory();
        var log = new List<string>();
        var (a, b) = await LoggedPair.StartAsync(dir, log);
        await using (a)
        await using (b)
        {
            // Planted once b attached (a copy of a file a lacks at the attach is removed): a's group does not exist
            // yet, and its first state reaches this copy.
            var planted = Path.Combine(dir.Combine("b"), Workers);
            Directory.CreateDirectory(Path.GetDirectoryName(planted)!);
            File.WriteAllBytes(planted, new byte[GroupAckStore.FileLength()]);
            Damage(planted);
            var broker = a.Broker!;
            await PositionCopies.PublishAsync(broker, Jobs, 4);
            await Eventually.TrueAsync(() => b.Replica is { Connected: true }, "b follows a", s_deadline);
            var welcomes = b.Replica!.Welcomes;
            var steps = Trace(b);
            using var member = broker.JoinGroup(Jobs, "workers", prefetch: 4);
            var jobs = await ReceiveAsync(member, 4);
            Assert.True(member.Ack(jobs[0]));
            Assert.True(member.Ack(jobs[1]));

            await AssertReplacedWithoutReattachAsync(a, b, welcomes, dir, log, steps, floor: 2);
        }
    }

    private static async Task AssertReplacedWithoutReattachAsync(ReplicatedNode a, ReplicatedNode b, int welcomes, TempDirectory dir, List<string> log, ConcurrentQueue<(string Step, string What)> steps, long floor)
    {
        var copy = Path.Combine(dir.Combine("b"), Workers);
        var primary = Path.Combine(dir.Combine("a"), Workers);

        // Either outcome ends the wait: the copy holds the primary's state, or the link went down.
        await Eventually.TrueAsync(
            () => (SameBytes(primary, copy) && GroupAckStore.ReadFloor(copy) == floor) || b.Replica!.Welcomes != welcomes || LoggedPair.LinkDowns(log).Count > 0,
            $"b's copy of the group state is the primary's (ack floor {floor}), or its link went down",
            s_deadline);
        Assert.True(
            b.Replica!.Welcomes == welcomes && LoggedPair.LinkDowns(log).Count == 0,
            $"the damaged copy ended b's link (welcomes {welcomes} → {b.Replica.Welcomes}): [{string.Join(" | ", LoggedPair.LinkDowns(log))}]");
        Assert.Equal(GroupMagic, BinaryPrimitives.ReadInt64LittleEndian(File.ReadAllBytes(copy)));
        string[] damaged;
        lock (log)
        {
            damaged = [.. log.Where(l => l.Contains(Workers, StringComparison.Ordinal) && l.Contains("damaged", StringComparison.Ordinal))];
        }

        Assert.True(damaged.Length == 1, $"expected one log line about the damaged copy of {Workers}: [{string.Join(" | ", damaged)}]");
        Assert.Contains($"magic 0x{BinaryPrimitives.ReadInt64LittleEndian("NOTAGRPS"u8):X16}", damaged[0], StringComparison.Ordinal);

        // Replaced, not written over in place: the new copy's entry in its directory is synced (before the next STATE_ACK).
        var groups = Path.GetDirectoryName(Workers)!;
        await Eventually.TrueAsync(() => steps.Contains(("fsync-dir", groups)), $"b syncs {groups} after it replaced the damaged copy (steps: {string.Join(", ", steps)})", s_deadline);
        Assert.True(b.Replica.Connected, "b still follows a");
        Assert.True(a.Broker is not null, "a is still the primary");
    }

    /// <summary>The standby's steps with its state files from now on (<see cref="StandbyReplica.StateTrace"/>).</summary>
    private static ConcurrentQueue<(string Step, string What)> Trace(ReplicatedNode b)
    {
        var steps = new ConcurrentQueue<(string Step, string What)>();
        b.Replica!.StateTrace = (step, what) => steps.Enqueue((step, what));
        return steps;
    }

    private static bool SameBytes(string primary, string copy) =>
        StateFiles.ReadShared(primary) is { } p && StateFiles.ReadShared(copy) is { } c && p.AsSpan().SequenceEqual(c);

    private static async Task<List<Message>> ReceiveAsync(WorkQueueMember member, int count)
    {
        var received = new List<Message>();
        using var cts = new CancellationTokenSource(s_deadline);
        await foreach (var m in member.ReadAllAsync(cts.Token))
        {
            received.Add(m);
            if (received.Count == count)
            {
                break;
            }
        }

        return received;
    }

    /// <summary>Overwrites the file's magic ("NOTAGRPS"), in place.</summary>
    private static void Damage(string path) => LoggedPair.Overwrite(path, "NOTAGRPS"u8);
}
