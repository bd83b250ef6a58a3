using System.Buffers.Binary;
using FastBroker.Engine;
using FastBroker.Replication;
using FastBroker.Testing;

namespace FastBroker.ReplicationTests.Failover;

/// <summary>
/// A damaged copy of a position file on the standby (its magic overwritten) is replaced by the primary's file whole
/// when a commit reaches it, logged once, and the link goes on: no reattach, no "link down". Two in-process nodes, no
/// witness, a 30 s heartbeat (so nothing but the standby's request sends the file whole within the test).
/// </summary>
public sealed class StandbyPositionDamageTests
{
    private const string Feed = "posdamage.feed";
    private const string Side = "posdamage.side";
    private const string Keeper = "subscriptions/keeper.pos";

    private static readonly TimeSpan s_deadline = TimeSpan.FromSeconds(30);

    [Fact]
    public async Task A_copy_damaged_while_the_link_is_up_is_replaced_by_the_primarys_file_without_a_reattach()
    {
        using var dir = new TempDirectory();
        var log = new List<string>();
        var (a, b) = await LoggedPair.StartAsync(dir, log);
        await using (a)
        await using (b)
        {
            var broker = a.Broker!;
            await PositionCopies.PublishAsync(broker, Feed, 10);
            await PositionCopies.PublishAsync(broker, Side, 10);
            using var keeper = broker.Subscribe("posdamage.*", SubscriptionOptions.Default with { DurableName = "keeper", Start = StartPosition.Committed });
            keeper.Commit(Feed, 5);
            keeper.Commit(Side, 3);

            // A hand-over's request sends keeper.pos whole: b closes its mapping of the copy it replaces.
            var version = broker.Replication!.RequestStateFiles();
            await Eventually.TrueAsync(() => broker.Replication.StateApplied >= version, $"b acknowledges state version {version}", s_deadline);
            Assert.Equal(5, PositionCopies.PositionIn(dir.Combine("b"), Keeper, Feed));
            var welcomes = b.Replica!.Welcomes;

            Damage(Path.Combine(dir.Combine("b"), Keeper));
            keeper.Commit(Feed, 8);

            await AssertReplacedWithoutReattachAsync(b, welcomes, dir, log);
        }
    }

    [Fact]
    public async Task A_copy_damaged_before_the_first_commit_reaches_it_is_replaced_by_the_primarys_file_without_a_reattach()
    {
        using var dir = new TempDirectory();
        var log = new List<string>();
        var (a, b) = await LoggedPair.StartAsync(dir, log);
        await using (a)
        await using (b)
        {
            // Planted once b attached (a copy of a file a lacks at the attach is removed): a's keeper does not exist
            // yet, so nothing replaces the copy before the first commit reaches it.
            var planted = Path.Combine(dir.Combine("b"), Keeper);
            Directory.CreateDirectory(Path.GetDirectoryName(planted)!);
            File.WriteAllBytes(planted, new byte[PositionStore.FileLength]);
            Damage(planted);
            var broker = a.Broker!;
            await PositionCopies.PublishAsync(broker, Feed, 10);
            await PositionCopies.PublishAsync(broker, Side, 10);
            await Eventually.TrueAsync(() => b.Replica is { Connected: true }, "b follows a", s_deadline);
            var welcomes = b.Replica!.Welcomes;
            using var keeper = broker.Subscribe("posdamage.*", SubscriptionOptions.Default with { DurableName = "keeper", Start = StartPosition.Committed });
            keeper.Commit(Side, 3);
            keeper.Commit(Feed, 8);

            await AssertReplacedWithoutReattachAsync(b, welcomes, dir, log);
        }
    }

    /// <summary>
    /// A copy damaged again and again (a disk that keeps damaging it, a primary that keeps sending what does) is
    /// replaced every time, but logged at most once per 10 s: the first damage at once, the next after 10 s with how
    /// many were not logged in between. Before, every damage was a line. The standby's log clock is a test's, moved by
    /// hand.
    /// </summary>
    [Fact]
    public async Task A_copy_damaged_over_and_over_is_logged_at_most_once_per_interval_with_a_count_of_the_others()
    {
        using var dir = new TempDirectory();
        var log = new List<string>();
        var clock = new ManualClock();
        var (a, b) = await LoggedPair.StartAsync(dir, log, clock);
        await using (a)
        await using (b)
        {
            var broker = a.Broker!;
            using var keeper = await PositionCopies.KeeperAsync(broker, Feed, Side, "posdamage.*");
            var version = broker.Replication!.RequestStateFiles(); // b holds keeper.pos whole, its mapping closed
            await Eventually.TrueAsync(() => broker.Replication.StateApplied >= version, $"b acknowledges state version {version}", s_deadline);
            var welcomes = b.Replica!.Welcomes;

            const int damages = 5;
            await RateLimitedLines.RepeatAsync(clock, damages, async index =>
            {
                var i = index + 1;
                Damage(Path.Combine(dir.Combine("b"), Keeper));
                keeper.Commit(Feed, i);
                var position = i;
                await Eventually.TrueAsync(
                    () => (PositionCopies.PositionIn(dir.Combine("b"), Keeper, Feed) == position && PositionCopies.PositionIn(dir.Combine("b"), Keeper, Side) == 3) || LoggedPair.LinkDowns(log).Count > 0,
                    $"damage {i}: b's copy of keeper.pos replaced by a's whole (feed {i}, side 3), or its link down",
                    s_deadline);
            });

            Assert.True(b.Replica.Welcomes == welcomes && LoggedPair.LinkDowns(log).Count == 0, $"a damaged copy ended b's link: [{string.Join(" | ", LoggedPair.LinkDowns(log))}]");
            string[] damaged;
            lock (log)
            {
                damaged = [.. log.Where(l => l.Contains(Keeper, StringComparison.Ordinal) && l.Contains("damaged", StringComparison.Ordinal))];
            }

            if (RateLimitedLines.Violation(damaged, damages, "damaged copies") is { } violation)
            {
                Assert.Fail(violation);
            }
        }
    }

    private static async Task AssertReplacedWithoutReattachAsync(ReplicatedNode b, int welcomes, TempDirectory dir, List<string> log)
    {
        // Either outcome ends the wait: the copy replaced, or the link down (then followed again after a pause).
        await Eventually.TrueAsync(
            () => (PositionCopies.PositionIn(dir.Combine("b"), Keeper, Feed) == 8 && PositionCopies.PositionIn(dir.Combine("b"), Keeper, Side) == 3) || b.Replica!.Welcomes != welcomes || LoggedPair.LinkDowns(log).Count > 0,
            "b's copy of keeper.pos holds feed 8 and side 3, or its link went down",
            s_deadline);
        Assert.True(
            b.Replica!.Welcomes == welcomes && LoggedPair.LinkDowns(log).Count == 0,
            $"the damaged copy ended b's link (welcomes {welcomes} → {b.Replica.Welcomes}): [{string.Join(" | ", LoggedPair.LinkDowns(log))}]");
        Assert.Equal(8, PositionCopies.PositionIn(dir.Combine("b"), Keeper, Feed));
        Assert.Equal(3, PositionCopies.PositionIn(dir.Combine("b"), Keeper, Side)); // only in the primary's file whole
        Assert.Equal(0x534F_5052_4246_4246L, BinaryPrimitives.ReadInt64LittleEndian(File.ReadAllBytes(Path.Combine(dir.Combine("b"), Keeper))));
        string[] damaged;
        lock (log)
        {
            damaged = [.. log.Where(l => l.Contains(Keeper, StringComparison.Ordinal) && l.Contains("damaged", StringComparison.Ordinal))];
        }

        Assert.True(damaged.Length == 1, $"expected one log line about the damaged copy: [{string.Join(" | ", damaged)}]");
        Assert.Contains("magic 0x4E534F5041544F4E", damaged[0], StringComparison.Ordinal);
        Assert.True(b.Replica.Connected, "b still follows a");
    }

    /// <summary>Overwrites the file's magic ("NOTAPOSN").</summary>
    private static void Damage(string path) => LoggedPair.Overwrite(path, "NOTAPOSN"u8);
}
