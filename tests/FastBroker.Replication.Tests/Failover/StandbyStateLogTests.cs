using FastBroker.Engine;
using FastBroker.Replication;
using FastBroker.Testing;

namespace FastBroker.ReplicationTests.Failover;

/// <summary>
/// What the standby logs about its copies of the state files besides damage (<see cref="StandbyPositionDamageTests"/>,
/// <see cref="StandbyGroupStateDamageTests"/>): a copy of another length than the primary's file is replaced with a
/// line that names it and both lengths, and a position copy that held no state is logged at most once per 10 s however
/// often the primary sends it blank (the count of those held back written when the standby stops). Two in-process nodes, no witness, a 30 s heartbeat (nothing but the test's requests
/// sends a file whole); the standby's log clock is the test's where it counts lines.
/// </summary>
public sealed class StandbyStateLogTests
{
    private const string Feed = "statelog.feed";
    private const string Side = "statelog.side";
    private const string Keeper = "subscriptions/keeper.pos";
    private const string Jobs = "statelog.jobs";
    private const string Workers = "topics/" + Jobs + "/groups/workers.state";

    private static readonly TimeSpan s_deadline = TimeSpan.FromSeconds(30);

    [Fact]
    public async Task A_group_state_copy_of_another_length_is_logged_with_both_lengths_when_the_primarys_file_replaces_it()
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
            var plantedLength = GroupAckStore.FileLength() + 64;
            Directory.CreateDirectory(Path.GetDirectoryName(planted)!);
            File.WriteAllBytes(planted, new byte[plantedLength]);
            var broker = a.Broker!;
            await PositionCopies.PublishAsync(broker, Jobs, 4);
            using var member = broker.JoinGroup(Jobs, "workers", prefetch: 4);
            var jobs = new List<Message>();
            using (var cts = new CancellationTokenSource(s_deadline))
            {
                await foreach (var m in member.ReadAllAsync(cts.Token))
                {
                    jobs.Add(m);
                    if (jobs.Count == 2)
                    {
                        break;
                    }
                }
            }

            Assert.True(member.Ack(jobs[0]));
            var primary = Path.Combine(dir.Combine("a"), Workers);
            await Eventually.TrueAsync(
                () => LengthOf(planted) is { } length && length == LengthOf(primary) && GroupAckStore.ReadFloor(planted) == 1,
                "b's copy of the group state has the primary's length and ack floor 1",
                s_deadline);

            var lines = Lines(log, Workers);
            Assert.True(lines.Length == 1, $"expected one log line about b's copy of {Workers}: [{string.Join(" | ", lines)}]");
            Assert.Contains($"was {plantedLength} bytes, the primary's {new FileInfo(primary).Length}", lines[0], StringComparison.Ordinal);
            Assert.True(b.Replica!.Connected, "b still follows a");
        }
    }

    [Fact]
    public async Task A_position_file_copy_of_another_length_is_logged_with_both_lengths_when_the_primarys_file_replaces_it()
    {
        using var dir = new TempDirectory();
        var log = new List<string>();
        var (a, b) = await LoggedPair.StartAsync(dir, log);
        await using (a)
        await using (b)
        {
            var broker = a.Broker!;
            await PositionCopies.PublishAsync(broker, Feed, 10);
            using var keeper = broker.Subscribe("statelog.*", SubscriptionOptions.Default with { DurableName = "keeper", Start = StartPosition.Committed });
            keeper.Commit(Feed, 5);
            var copy = Path.Combine(dir.Combine("b"), Keeper);
            await Eventually.TrueAsync(() => PositionCopies.PositionIn(dir.Combine("b"), Keeper, Feed) == 5, "b's copy of keeper.pos holds feed 5", s_deadline);

            var longer = PositionStore.FileLength + 4096;
            using (var f = new FileStream(copy, FileMode.Open, FileAccess.Write, FileShare.ReadWrite | FileShare.Delete))
            {
                f.SetLength(longer); // b's mapping of it stays open
            }

            // A hand-over's request sends keeper.pos whole (the link sent only its commits so far).
            var version = broker.Replication!.RequestStateFiles();
            await Eventually.TrueAsync(() => broker.Replication.StateApplied >= version, $"b acknowledges state version {version}", s_deadline);

            Assert.Equal(PositionStore.FileLength, new FileInfo(copy).Length);
            Assert.Equal(5, PositionCopies.PositionIn(dir.Combine("b"), Keeper, Feed));
            var lines = Lines(log, Keeper);
            Assert.True(lines.Length == 1, $"expected one log line about b's copy of {Keeper}: [{string.Join(" | ", lines)}]");
            Assert.Contains($"was {longer} bytes, the primary's {PositionStore.FileLength}", lines[0], StringComparison.Ordinal);
        }
    }

    /// <summary>
    /// The primary's position file blanked (zeros) before each of its hand-over requests: each sends it whole, blank,
    /// and the next commit finds b's copy holding no state, five times; logged the first time at once and once more
    /// after 10 s with how many were not logged in between.
    /// </summary>
    [Fact]
    public async Task A_position_copy_the_primary_sends_blank_over_and_over_is_logged_at_most_once_per_interval_with_a_count_of_the_others()
    {
        using var dir = new TempDirectory();
        var log = new List<string>();
        var clock = new ManualClock();
        var (a, b) = await LoggedPair.StartAsync(dir, log, clock);
        await using (a)
        await using (b)
        {
            var broker = a.Broker!;
            using var keeper = await KeeperCopiedAsync(dir, broker);
            var welcomes = b.Replica!.Welcomes;

            const int blanks = 5;
            await RateLimitedLines.RepeatAsync(clock, blanks, async index =>
            {
                await BlankAndCommitAsync(dir, broker, keeper, b, welcomes, index + 1);
            });

            Assert.True(b.Replica.Welcomes == welcomes, "b attached again");
            string[] blank;
            lock (log)
            {
                blank = [.. log.Where(l => l.Contains(Keeper, StringComparison.Ordinal) && l.Contains("held no state", StringComparison.Ordinal))];
            }

            if (RateLimitedLines.Violation(blank, blanks, "blank copies") is { } violation)
            {
                Assert.Fail(violation);
            }
        }
    }

    /// <summary>
    /// The primary's position file cut short (its entries whole) before each of its hand-over requests: each sends it
    /// whole, short, and the next commit finds b's copy short and pads it with zeros, five times; logged the first time
    /// at once and once more after 10 s with how many were not logged in between.
    /// </summary>
    [Fact]
    public async Task A_short_position_copy_padded_over_and_over_is_logged_at_most_once_per_interval_with_a_count_of_the_others()
    {
        using var dir = new TempDirectory();
        var log = new List<string>();
        var clock = new ManualClock();
        var (a, b) = await LoggedPair.StartAsync(dir, log, clock);
        await using (a)
        await using (b)
        {
            var broker = a.Broker!;
            await PositionCopies.PublishAsync(broker, Feed, 20);
            var options = SubscriptionOptions.Default with { DurableName = "keeper", Start = StartPosition.Committed };
            var keeper = broker.Subscribe(Feed, options);
            try
            {
                keeper.Commit(Feed, 1);
                await Eventually.TrueAsync(() => PositionCopies.PositionIn(dir.Combine("b"), Keeper, Feed) == 1, "b's copy of keeper.pos holds feed 1", s_deadline);
                var welcomes = b.Replica!.Welcomes;
                var primary = Path.Combine(dir.Combine("a"), Keeper);
                const int repeats = 5;
                await RateLimitedLines.RepeatAsync(clock, repeats, async index =>
                {
                    var i = index + 1;
                    keeper.Dispose(); // a's mapping of the file closed: cutting it short is safe
                    using (var f = new FileStream(primary, FileMode.Open, FileAccess.Write, FileShare.ReadWrite | FileShare.Delete))
                    {
                        f.SetLength(PositionStore.HeaderBytes + PositionStore.EntryBytes); // its one entry whole
                    }

                    var version = broker.Replication!.RequestStateFiles();
                    await Eventually.TrueAsync(() => broker.Replication.StateApplied >= version, $"repeat {i}: b acknowledges state version {version}", s_deadline);
                    keeper = broker.Subscribe(Feed, options);
                    keeper.Commit(Feed, 1 + i);
                    var position = 1 + i;
                    await Eventually.TrueAsync(
                        () => PositionCopies.PositionIn(dir.Combine("b"), Keeper, Feed) == position || b.Replica.Welcomes != welcomes,
                        $"repeat {i}: b's copy of keeper.pos holds feed {position}, or b attached again",
                        s_deadline);
                });

                Assert.True(b.Replica.Welcomes == welcomes, "b attached again");
                string[] padded;
                lock (log)
                {
                    padded = [.. log.Where(l => l.StartsWith($"replication: position file {Keeper} was", StringComparison.Ordinal) && l.Contains("padded with zeros", StringComparison.Ordinal))];
                }

                if (RateLimitedLines.Violation(padded, repeats, "short copies padded") is { } violation)
                {
                    Assert.Fail(violation);
                }
            }
            finally
            {
                keeper.Dispose();
            }
        }
    }

    /// <summary>
    /// The primary's position file sent blank three times within one interval: the first blank copy is logged at once,
    /// the other two held back; when the standby stops, the latest of them is written with their count, once. Before,
    /// the count went out only with the next such line, and the standby's end lost it.
    /// </summary>
    [Fact]
    public async Task Blank_copy_lines_held_back_are_written_with_their_count_once_when_the_standby_stops()
    {
        using var dir = new TempDirectory();
        var log = new List<string>();
        var clock = new ManualClock(); // never moved on: every line after the first is held back
        var (a, b) = await LoggedPair.StartAsync(dir, log, clock);
        await using (a)
        await using (b)
        {
            var broker = a.Broker!;
            using var keeper = await KeeperCopiedAsync(dir, broker);
            var welcomes = b.Replica!.Welcomes;
            const int blanks = 3;
            for (var i = 1; i <= blanks; i++)
            {
                await BlankAndCommitAsync(dir, broker, keeper, b, welcomes, i);
            }

            Assert.True(b.Replica.Welcomes == welcomes, "b attached again");
            Assert.Single(BlankLines(log));

            await b.DisposeAsync();
            var lines = BlankLines(log);
            var count = $"({blanks - 1} more like it since the last such line, not logged; this is the latest of them)";
            Assert.True(
                lines.Length == 2 && !lines[0].Contains("not logged", StringComparison.Ordinal) && lines[1].EndsWith(count, StringComparison.Ordinal),
                $"expected the first blank copy's line, then at the standby's stop one ending with '{count}': [{string.Join(" | ", lines)}]");
        }
    }

    private static string[] BlankLines(List<string> log)
    {
        lock (log)
        {
            return [.. log.Where(l => l.Contains(Keeper, StringComparison.Ordinal) && l.Contains("held no state", StringComparison.Ordinal))];
        }
    }

    /// <summary>The file's length; null while there is none (b removes a copy before it creates the new one).</summary>
    private static long? LengthOf(string path)
    {
        var info = new FileInfo(path);
        return info.Exists ? info.Length : null;
    }

    private static string[] Lines(List<string> log, string relative)
    {
        lock (log)
        {
            return [.. log.Where(l => l.Contains(relative, StringComparison.Ordinal) && !l.Contains("link down", StringComparison.Ordinal))];
        }
    }

    /// <summary>Writes zeros over the whole file, in place.</summary>
    /// <summary>The durable subscription "keeper" on a, once b's copy of its position file holds side 3.</summary>
    private static async Task<Subscription> KeeperCopiedAsync(TempDirectory dir, Broker broker)
    {
        var keeper = await PositionCopies.KeeperAsync(broker, Feed, Side, "statelog.*");
        await Eventually.TrueAsync(() => PositionCopies.PositionIn(dir.Combine("b"), Keeper, Side) == 3, "b's copy of keeper.pos holds side 3", s_deadline);
        return keeper;
    }

    /// <summary>
    /// Blanks a's keeper.pos (its mapping stays open), waits until b acknowledged the state version that carries it,
    /// then commits feed position <paramref name="i"/> and waits until b's copy holds it (or b attached again).
    /// </summary>
    private static async Task BlankAndCommitAsync(TempDirectory dir, Broker broker, Subscription keeper, ReplicatedNode b, long welcomes, int i)
    {
        Blank(Path.Combine(dir.Combine("a"), Keeper));
        var version = broker.Replication!.RequestStateFiles();
        await Eventually.TrueAsync(() => broker.Replication.StateApplied >= version, $"blank {i}: b acknowledges state version {version}", s_deadline);
        keeper.Commit(Feed, i);
        await Eventually.TrueAsync(
            () => PositionCopies.PositionIn(dir.Combine("b"), Keeper, Feed) == i || b.Replica!.Welcomes != welcomes,
            $"blank {i}: b's copy of keeper.pos holds feed {i}, or b attached again",
            s_deadline);
    }

    private static void Blank(string path) => LoggedPair.Overwrite(path, new byte[new FileInfo(path).Length]);
}
