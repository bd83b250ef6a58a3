using FastBroker.Engine;
using FastBroker.Testing;
using static FastBroker.BrokerTests.ClaimPublishTests;

namespace FastBroker.BrokerTests;

/// <summary>
/// A producer id's newest epoch outlives its window: it is kept for <c>BrokerOptions.ProducerEpochRetention</c>
/// (7 days; at least <see cref="BrokerOptions.ProducerExpiry"/>) after the id was last in use, by the running broker
/// once the sweep forgot the producer and by a restart that knows the id from <c>producers.epochs</c> alone (its
/// records out of the rescan, <c>producers.state</c> lost), and <c>producers.epochs</c> is read at every open, also
/// with <see cref="BrokerOptions.ProducerRecoveryRecords"/> 0. So a replaced instance (a zombie) stays fenced.
/// </summary>
public sealed class ProducerEpochRetentionTests
{
    private const ulong Id = 0x0E90_C4D0_0000_0041;
    private const ulong Busy = 0x0E90_C4D0_0000_0042;
    private const ulong Other = 0x0E90_C4D0_0000_0043;

    private static BrokerOptions ShortExpiry(BrokerOptions o) =>
        o with { ProducerRecoveryRecords = 8, AllowSmallProducerRescan = true, ProducerIdleTimeout = TimeSpan.FromMilliseconds(100), ProducerExpiry = TimeSpan.FromMilliseconds(200) };

    /// <summary>
    /// <c>producers.state</c> deleted while the broker is stopped and the producer's records out of the rescan (8
    /// records): its epoch is known from <c>producers.epochs</c> only, given longer than the expiry ago.
    /// </summary>
    [Fact]
    public async Task A_replaced_instance_stays_fenced_after_a_restart_without_producers_state_once_the_expiry_passed()
    {
        await using var f = await BrokerFixture.StartAsync(ShortExpiry);
        var (old, current) = await ReplaceAsync(f.Broker);
        for (var i = 0; i < 16; i++)
        {
            await f.Broker.PublishAsync("t", "push"u8.ToArray()); // the producer's records leave the rescan
        }

        Eventually.True(() => (ulong)DateTimeOffset.UtcNow.ToUnixTimeMilliseconds() - current >= 400, "twice the expiry passes after the new epoch was given and written with", TimeSpan.FromSeconds(30));
        await f.RestartAsync(ShortExpiry, () => File.Delete(Path.Combine(f.DataDirectory, ProducerCheckpoint.FileName)));

        Assert.Equal(0UL, f.Broker.NextProducerSequence(Id)); // the window is gone with producers.state: only the epoch is known
        await AssertFencedAsync(f.Broker, old, current);

        // And the epoch stays in producers.epochs: the next file written (another id's new epoch) still holds it.
        f.Broker.InitProducer(Other);
        Assert.True(ProducerCheckpointFile.Holds(Path.Combine(f.DataDirectory, ProducerCheckpointFile.EpochsName), current), $"producers.epochs still holds epoch {current} of {Id:x16}");
    }

    /// <summary>The sweep forgets the producer (its window) after the expiry; its epoch stays, and fences.</summary>
    [Fact]
    public async Task A_replaced_instance_stays_fenced_after_the_sweep_forgot_its_producer()
    {
        await using var f = await BrokerFixture.StartAsync(o => o with { ProducerIdleTimeout = TimeSpan.FromMilliseconds(10), ProducerExpiry = TimeSpan.FromMilliseconds(20) });
        var (old, current) = await ReplaceAsync(f.Broker);

        var filler = new RecordingSink();
        var busy = 0UL;
        await Eventually.TrueAsync(() =>
        {
            PublishIdempotent(f.Broker, filler, Busy, busy, "t", "filler", busy);
            filler.WaitForAsync((int)++busy).Wait();
            return f.Broker.NextProducerSequence(Id) == 0;
        }, "the expired producer was forgotten", TimeSpan.FromSeconds(30));

        await AssertFencedAsync(f.Broker, old, current);
    }

    /// <summary>
    /// <see cref="BrokerOptions.ProducerRecoveryRecords"/> 0 reads neither the rescan nor the window in
    /// <c>producers.state</c>, but the epochs are read all the same.
    /// </summary>
    [Fact]
    public async Task Without_producer_recovery_a_restart_still_fences_with_the_epochs_files()
    {
        static BrokerOptions NoRecovery(BrokerOptions o) => o with { ProducerRecoveryRecords = 0 };
        await using var f = await BrokerFixture.StartAsync(NoRecovery);
        var (old, current) = await ReplaceAsync(f.Broker);
        await f.RestartAsync(NoRecovery);

        Assert.Equal(0UL, f.Broker.NextProducerSequence(Id)); // no window recovered
        await AssertFencedAsync(f.Broker, old, current);
        f.Broker.InitProducer(Other);
        Assert.True(ProducerCheckpointFile.Holds(Path.Combine(f.DataDirectory, ProducerCheckpointFile.EpochsName), current), $"producers.epochs still holds epoch {current} of {Id:x16}");
    }

    /// <summary>
    /// <c>producers.epochs</c> is rewritten by its refresh once its last write is an hour old (a quarter of a shorter
    /// retention), with each id's last use: what a restart after a crash ages an id without a window by. Within the
    /// interval it is not. The id's uses are ahead of the files' clock, so none is past the retention.
    /// </summary>
    [Fact]
    public void The_epochs_file_is_refreshed_with_each_ids_last_use_once_its_interval_passed()
    {
        using var dir = new TempDirectory();
        var topic = new TopicState("t", TopicOptions.Default with { Persistent = false }, "t", null, new TransientLog(16));
        var registry = new ProducerRegistry(64, idleMs: 10, expiryMs: 100, epochRetentionMs: 400);
        var given = DateTimeOffset.UtcNow.ToUnixTimeMilliseconds() + 60_000; // ahead of the files' clock: never past the retention
        Assert.Equal((0UL, (ulong)given), registry.Init(Id, 0, now: (ulong)given));

        Directory.CreateDirectory(dir.Combine("hourly"));
        var hourly = new ProducerEpochFile(dir.Combine("hourly"), null);
        var quick = new ProducerEpochFile(dir.Path, null, retentionMs: 400); // refreshed at most every 100 ms
        hourly.Persist(registry);
        quick.Persist(registry);
        Assert.Equal(given, SeenIn(dir.Combine("hourly")));
        Assert.Equal(given, SeenIn(dir.Path));

        registry.Record(Id, 0, topic, 0, timestamp: given + 4_000, epoch: (ulong)given); // the instance writes
        hourly.Refresh(registry);
        Assert.Equal(given, SeenIn(dir.Combine("hourly"))); // an hour has not passed since its write
        Eventually.True(() =>
        {
            quick.Refresh(registry);
            return SeenIn(dir.Path) == given + 4_000;
        }, "producers.epochs refreshed with the id's newest write", TimeSpan.FromSeconds(30));
    }

    /// <summary>
    /// The broker's timer refreshes <c>producers.epochs</c> once its interval passed on the producer clock (a quarter of
    /// a 4 s epoch retention: 1 s), also when no periodic capture of <c>producers.state</c> comes (one record, far below
    /// the 8,192 between captures): the file then gives the id's last use, its newest write, not when it was given.
    /// </summary>
    [Fact]
    public async Task The_epochs_file_is_refreshed_by_the_timer_without_a_periodic_capture()
    {
        var clock = new ManualClock();
        await using var f = await BrokerFixture.StartAsync(o => o with { StampClock = clock, ProducerIdleTimeout = TimeSpan.FromSeconds(1), ProducerExpiry = TimeSpan.FromSeconds(2), ProducerEpochRetention = TimeSpan.FromSeconds(4) });
        var (_, epoch) = f.Broker.InitProducer(Id);
        Assert.Equal((long)epoch, SeenIn(f.DataDirectory)); // written before it was answered, in use since

        clock.Advance(TimeSpan.FromMinutes(1));
        var written = clock.GetUtcNow().ToUnixTimeMilliseconds();
        var sink = new RecordingSink();
        PublishIdempotent(f.Broker, sink, Id, 0, "t", "m0", 1, epoch: epoch);
        Assert.Equal(BrokerErrorCode.None, (await sink.WaitForAsync(1))[0].Error);
        await Eventually.TrueAsync(
            () => SeenIn(f.DataDirectory) == written,
            $"producers.epochs refreshed with the id's newest write at {written} (given at {epoch}), one record written and no capture",
            TimeSpan.FromSeconds(30));
    }

    /// <summary>
    /// An id last in use longer than the epoch retention ago (here an instance replaced by one that never wrote, 1,023
    /// ids short of the count at which a new id's coming prunes) is forgotten by the running broker at the timer's
    /// refresh of <c>producers.epochs</c> (its interval: a quarter of the 4 s retention, on the producer clock), which
    /// leaves it out, as a restart, or a standby promoted with the file, drops it: all of them then agree that its
    /// replaced instance's resume is taken. The broker's producer clock is the test's.
    /// </summary>
    [Fact]
    public async Task The_timer_refresh_forgets_an_id_past_the_epoch_retention_as_a_restart_does()
    {
        var clock = new ManualClock();
        await using var f = await BrokerFixture.StartAsync(o => o with { StampClock = clock, ProducerIdleTimeout = TimeSpan.FromSeconds(1), ProducerExpiry = TimeSpan.FromSeconds(2), ProducerEpochRetention = TimeSpan.FromSeconds(4) });
        var epochs = Path.Combine(f.DataDirectory, ProducerEpochFile.FileName);
        var (_, old) = f.Broker.InitProducer(Other);
        clock.Advance(TimeSpan.FromMilliseconds(1));
        var (_, current) = f.Broker.InitProducer(Other); // replaces it and never writes
        Assert.True(current > old, $"epoch {current} after {old}");
        Assert.Equal(BrokerErrorCode.ProducerFenced, Assert.Throws<BrokerException>(() => f.Broker.InitProducer(Other, old)).Code);

        clock.Advance(TimeSpan.FromSeconds(5)); // past the retention after the id's last use
        await Eventually.TrueAsync(
            () => !ProducerCheckpointFile.Names(epochs, Other),
            $"the timer's refresh of producers.epochs leaves out {Other:x16}, last in use 5 s ago at epoch {current} (retention 4 s)",
            TimeSpan.FromSeconds(30));
        Assert.Equal(0UL, f.Broker.Producers.Fence(Other));
        Assert.Equal(old, f.Broker.InitProducer(Other, old).Epoch); // forgotten: taken, as a restart takes it
    }

    /// <summary>
    /// <c>producers.epochs</c> damaged at the open: the epochs are known from <c>producers.state</c> alone, each with its
    /// id's last use (the newest write, 8 minutes after the epoch was given), so one is kept for the epoch retention
    /// (10 minutes) after that use, not after the epoch was given, and dropped once it passed. The broker's producer
    /// clock is the test's: no waiting.
    /// </summary>
    [Fact]
    public async Task An_epoch_known_from_producers_state_alone_is_kept_for_the_retention_after_its_ids_last_use()
    {
        var clock = new ManualClock();
        BrokerOptions Options(BrokerOptions o) => o with
        {
            StampClock = clock,
            ProducerRecoveryRecords = 0, // no window: the epochs files alone know the id
            ProducerIdleTimeout = TimeSpan.FromMinutes(5),
            ProducerExpiry = TimeSpan.FromMinutes(10),
            ProducerEpochRetention = TimeSpan.FromMinutes(10),
        };
        void DamageEpochsFile(TimeSpan advance, string dataDirectory)
        {
            File.WriteAllBytes(Path.Combine(dataDirectory, ProducerEpochFile.FileName), new byte[40]);
            clock.Advance(advance);
        }

        await using var f = await BrokerFixture.StartAsync(Options);
        var (old, current) = await ReplaceAsync(f.Broker);
        clock.Advance(TimeSpan.FromMinutes(8));
        var sink = new RecordingSink();
        PublishIdempotent(f.Broker, sink, Id, 4, "t", "new4", 4, epoch: current); // the id's last use
        Assert.Equal(BrokerErrorCode.None, (await sink.WaitForAsync(1))[0].Error);

        // 17 minutes after the epoch was given, 9 after the id's last use: fenced.
        await f.RestartAsync(Options, () => DamageEpochsFile(TimeSpan.FromMinutes(9), f.DataDirectory));
        Assert.Equal(0UL, f.Broker.NextProducerSequence(Id));
        var resume = Record.Exception(() => f.Broker.InitProducer(Id, old));
        Assert.True(resume is BrokerException { Code: BrokerErrorCode.ProducerFenced }, $"the replaced instance's resume 9 minutes after the id's last use (17 after epoch {current} was given; retention 10) with producers.epochs damaged: {resume?.Message ?? "accepted"}");

        // Past the retention after that last use: dropped, as the running broker drops it.
        await f.RestartAsync(Options, () => DamageEpochsFile(TimeSpan.FromMinutes(1.5), f.DataDirectory));
        Assert.Equal(old, f.Broker.InitProducer(Id, old).Epoch);
    }

    private static long SeenIn(string directory)
    {
        var epochs = ProducerEpochFile.Load(directory, now: -1, out var problem);
        Assert.Null(problem);
        return epochs.Single(e => e.Producer == Id).Seen;
    }

    /// <summary>An old instance of <see cref="Id"/> stores sequences 0-2 in "t", a new one sequence 3: both epochs.</summary>
    private static async Task<(ulong Old, ulong Current)> ReplaceAsync(Broker broker)
    {
        var (_, old) = broker.InitProducer(Id);
        var sink = new RecordingSink();
        for (var i = 0UL; i < 3; i++)
        {
            PublishIdempotent(broker, sink, Id, i, "t", $"old{i}", i, epoch: old);
        }

        Assert.All(await sink.WaitForAsync(3), o => Assert.Equal(BrokerErrorCode.None, o.Error));
        var (next, current) = broker.InitProducer(Id);
        Assert.Equal(3UL, next);
        Assert.True(current > old, $"epoch {current} after {old}");
        PublishIdempotent(broker, sink, Id, 3, "t", "new3", 3, epoch: current);
        Assert.All(await sink.WaitForAsync(4), o => Assert.Equal(BrokerErrorCode.None, o.Error));
        return (old, current);
    }

    private static async Task AssertFencedAsync(Broker broker, ulong old, ulong current)
    {
        var resume = Record.Exception(() => broker.InitProducer(Id, old));
        Assert.True(resume is BrokerException { Code: BrokerErrorCode.ProducerFenced }, $"the replaced instance's resume (epoch {old}, replaced by {current}): {resume?.Message ?? "accepted"}");
        var sink = new RecordingSink();
        PublishIdempotent(broker, sink, Id, 4, "t", "old4", 1, epoch: old); // the replaced instance goes on: fenced
        var outcome = (await sink.WaitForAsync(1))[0];
        Assert.True(outcome.Error == BrokerErrorCode.ProducerFenced, $"the replaced instance's publish (epoch {old}, replaced by {current}): {outcome.Error} at offset {outcome.Offset}, expected ProducerFenced");
        Assert.Equal(current, broker.InitProducer(Id, current).Epoch); // the new instance resumes
    }
}
