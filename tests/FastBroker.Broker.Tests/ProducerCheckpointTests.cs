using System.Collections.Concurrent;
using FastBroker.Engine;
using FastBroker.Testing;
using static FastBroker.BrokerTests.ProducerCheckpointScenario;

namespace FastBroker.BrokerTests;

/// <summary>
/// The idempotent-producer window after a restart reaches past the rescan of each topic's newest records: a producer
/// whose records other producers pushed out of the rescan is still known, through <c>producers.state</c>. Before it,
/// such a producer's retry of a stored message was stored a second time. The rescan is cut to 64 records here so that
/// a few thousand records by another producer push the first one out of it.
/// </summary>
public sealed class ProducerCheckpointTests
{
    private const int Others = 20_000; // Busy's records after Early's 10

    [Fact]
    public async Task A_producer_pushed_out_of_the_rescan_is_still_deduplicated_after_a_crash()
    {
        await using var f = await BrokerFixture.StartAsync(SmallRescan);
        await PublishEarlyThenBusyAsync(f.Broker, new ClaimPublishTests.RecordingSink(), busy: Others);

        // The journaler captures the window every few thousand records: wait for a capture holding the early producer,
        // then copy the data directory as it is (what a kill -9 now would leave: no checkpoint written at close).
        var checkpoint = Path.Combine(f.DataDirectory, ProducerCheckpoint.FileName);
        Eventually.True(() => ProducerCheckpointFile.Names(checkpoint, Early), "a capture of the journaler holds the early producer", TimeSpan.FromSeconds(30));
        using var crashed = new TempDirectory("fastbroker-crash-copy");
        CopyDirectory(f.DataDirectory, crashed.Path);

        await using var broker = await Broker.OpenAsync(SmallRescan(BrokerFixture.Options(crashed.Path)));
        Assert.Equal(10UL, broker.NextProducerSequence(Early));
        var sink = new ClaimPublishTests.RecordingSink();
        ClaimPublishTests.PublishIdempotent(broker, sink, Early, 5, "t", "e5", 1);   // stored, beyond the rescan: refused
        ClaimPublishTests.PublishIdempotent(broker, sink, Early, 9, "t", "e9", 2);   // the checkpoint's own record
        ClaimPublishTests.PublishIdempotent(broker, sink, Early, 10, "t", "e10", 3); // new
        var outcomes = await sink.WaitForAsync(3);
        Assert.Equal(BrokerErrorCode.InvalidArgument, outcomes[0].Error);
        Assert.Contains("older than", outcomes[0].Reason, StringComparison.Ordinal);
        Assert.Equal((9L, true), (outcomes[1].Offset, outcomes[1].Duplicate));
        Assert.Equal((10L + Others, false), (outcomes[2].Offset, outcomes[2].Duplicate));
        Assert.Equal(10 + Others + 1, ClaimPublishTests.Head(broker, "t"));
    }

    [Theory]
    [InlineData(1)]
    [InlineData(64)]
    [InlineData(BrokerOptions.MinProducerRecoveryRecords - 1)]
    public async Task A_rescan_shorter_than_four_checkpoint_intervals_is_refused(int records)
    {
        // Records stored after the checkpoint's last capture (up to 8,192 and one capture being written) must lie in
        // the rescan after a crash, or a retry of one of them would be stored again.
        using var dir = new TempDirectory("fastbroker-small-rescan");
        var e = await Assert.ThrowsAsync<BrokerException>(async () => await Broker.OpenAsync(BrokerFixture.Options(dir.Path) with { ProducerRecoveryRecords = records }));
        Assert.Equal(BrokerErrorCode.InvalidArgument, e.Code);
        Assert.Contains("ProducerRecoveryRecords", e.Message, StringComparison.Ordinal);
        Assert.Contains("at least 32768", e.Message, StringComparison.Ordinal);
        Assert.Empty(Directory.EnumerateFileSystemEntries(dir.Path));
    }

    [Fact]
    public async Task A_rescan_of_0_recovers_no_producer_and_the_minimum_is_accepted()
    {
        await using var f = await BrokerFixture.StartAsync(o => o with { ProducerRecoveryRecords = BrokerOptions.MinProducerRecoveryRecords });
        var sink = new ClaimPublishTests.RecordingSink();
        for (var i = 0; i < 3; i++)
        {
            ClaimPublishTests.PublishIdempotent(f.Broker, sink, Early, (ulong)i, "t", $"e{i}", (ulong)i + 1);
        }

        await sink.WaitForAsync(3);
        await f.RestartAsync(o => o with { ProducerRecoveryRecords = BrokerOptions.MinProducerRecoveryRecords });
        Assert.Equal(3UL, f.Broker.NextProducerSequence(Early));

        // 0 = off, as before the minimum: neither the rescan nor producers.state is read, every producer is new.
        await f.RestartAsync(o => o with { ProducerRecoveryRecords = 0 });
        Assert.Equal(0UL, f.Broker.NextProducerSequence(Early));
    }

    [Fact]
    public async Task A_producer_pushed_out_of_the_rescan_is_still_deduplicated_after_a_restart()
    {
        await using var f = await BrokerFixture.StartAsync(SmallRescan);
        await PublishEarlyThenBusyAsync(f.Broker, new ClaimPublishTests.RecordingSink(), busy: Others);
        await f.RestartAsync(SmallRescan);

        var sink = new ClaimPublishTests.RecordingSink();
        ClaimPublishTests.PublishIdempotent(f.Broker, sink, Early, 3, "t", "e3", 1);
        var outcomes = await sink.WaitForAsync(1);
        Assert.Equal(BrokerErrorCode.InvalidArgument, outcomes[0].Error);
        Assert.Equal(10 + Others, ClaimPublishTests.Head(f.Broker, "t"));
    }

    [Fact]
    public async Task A_damaged_checkpoint_is_reported_and_ignored()
    {
        var log = new ConcurrentQueue<string>();
        await using var f = await BrokerFixture.StartAsync(o => SmallRescan(o) with { Log = log.Enqueue });
        await PublishEarlyThenBusyAsync(f.Broker, new ClaimPublishTests.RecordingSink(), busy: Others);
        await f.RestartAsync(o => SmallRescan(o) with { Log = log.Enqueue }, whileClosed: () =>
        {
            var path = Path.Combine(f.DataDirectory, ProducerCheckpoint.FileName);
            var bytes = File.ReadAllBytes(path);
            bytes[^6] ^= 0x55;
            File.WriteAllBytes(path, bytes);
        });

        Assert.Contains(log, l => l.Contains("producers.state: damaged", StringComparison.Ordinal));
        await f.Broker.PublishAsync("t", "after"u8.ToArray()); // the broker serves
    }

    /// <summary>
    /// A crash while a capture was written, before its rename, leaves a torn <c>producers.state.tmp</c> beside the whole
    /// <c>producers.state</c>: the open reads only the latter (nothing reported, the producer still known) and its own
    /// durable write replaces the temporary file, so none is left.
    /// </summary>
    [Fact]
    public async Task A_torn_temporary_checkpoint_left_by_a_crash_before_its_rename_is_ignored_and_gone_after_the_open()
    {
        var log = new ConcurrentQueue<string>();
        await using var f = await BrokerFixture.StartAsync(o => SmallRescan(o) with { Log = log.Enqueue });
        await PublishEarlyThenBusyAsync(f.Broker, new ClaimPublishTests.RecordingSink(), busy: Others);
        var temporary = Path.Combine(f.DataDirectory, ProducerCheckpoint.FileName + ".tmp");
        await f.RestartAsync(o => SmallRescan(o) with { Log = log.Enqueue }, whileClosed: () =>
        {
            var whole = File.ReadAllBytes(Path.Combine(f.DataDirectory, ProducerCheckpoint.FileName));
            File.WriteAllBytes(temporary, whole.AsSpan(0, whole.Length / 2).ToArray());
        });

        Assert.DoesNotContain(log, l => l.Contains(ProducerCheckpoint.FileName + ":", StringComparison.Ordinal));
        Assert.False(File.Exists(temporary), "the torn temporary checkpoint is still there after the open");
        Assert.Equal(10UL, f.Broker.NextProducerSequence(Early));
        var sink = new ClaimPublishTests.RecordingSink();
        ClaimPublishTests.PublishIdempotent(f.Broker, sink, Early, 3, "t", "e3", 1); // stored, beyond the rescan: refused
        Assert.Equal(BrokerErrorCode.InvalidArgument, (await sink.WaitForAsync(1))[0].Error);
    }

    /// <summary>A producer whose newest record went to a transient topic has no entry (nothing to check it against later).</summary>
    [Fact]
    public async Task A_producer_whose_newest_record_is_transient_leaves_no_entry_to_report()
    {
        var log = new ConcurrentQueue<string>();
        await using var f = await BrokerFixture.StartAsync(o => o with { Log = log.Enqueue });
        f.Broker.CreateTopic("fleeting", TopicOptions.Default with { Persistent = false });
        var sink = new ClaimPublishTests.RecordingSink();
        ClaimPublishTests.PublishIdempotent(f.Broker, sink, Early, 0, "t", "e0", 0);
        ClaimPublishTests.PublishIdempotent(f.Broker, sink, Early, 1, "fleeting", "e1", 1);
        await sink.WaitForAsync(2);
        await f.RestartAsync(o => o with { Log = log.Enqueue });

        Assert.DoesNotContain(log, l => l.Contains(ProducerCheckpoint.FileName, StringComparison.Ordinal));
        Assert.Equal(1UL, f.Broker.NextProducerSequence(Early)); // from the rescan of "t"
    }

    /// <summary>
    /// A checkpoint whose records this journal does not hold (here: another broker's, standing for a journal cut after a
    /// failover) vouches for nothing: its entries are ignored, so it cannot make the broker refuse a new message.
    /// </summary>
    [Fact]
    public async Task Checkpoint_entries_whose_records_the_journal_does_not_hold_are_ignored()
    {
        using var other = new TempDirectory("fastbroker-other");
        await using (var elsewhere = await Broker.OpenAsync(BrokerFixture.Options(other.Path)))
        {
            var sink = new ClaimPublishTests.RecordingSink();
            ClaimPublishTests.PublishRun(elsewhere, sink, Early, 0, 10, "e");

            await sink.WaitForAsync(10);
        }

        var log = new ConcurrentQueue<string>();
        await using var f = await BrokerFixture.StartAsync(o => o with { Log = log.Enqueue });
        var busy = new ClaimPublishTests.RecordingSink();
        for (var i = 0UL; i < 20; i++)
        {
            ClaimPublishTests.PublishIdempotent(f.Broker, busy, Busy, i, "t", $"b{i}", i);
        }

        await busy.WaitForAsync(20);
        await f.RestartAsync(o => o with { Log = log.Enqueue }, whileClosed: () =>
            File.Copy(Path.Combine(other.Path, ProducerCheckpoint.FileName), Path.Combine(f.DataDirectory, ProducerCheckpoint.FileName), overwrite: true));

        Assert.Contains(log, l => l.Contains("not in this journal", StringComparison.Ordinal));
        Assert.Equal(0UL, f.Broker.NextProducerSequence(Early));
        var sinkAfter = new ClaimPublishTests.RecordingSink();
        ClaimPublishTests.PublishIdempotent(f.Broker, sinkAfter, Early, 5, "t", "e5", 1);
        var outcomes = await sinkAfter.WaitForAsync(1);
        Assert.Equal((20L, false, BrokerErrorCode.None), (outcomes[0].Offset, outcomes[0].Duplicate, outcomes[0].Error));
    }

    /// <summary>
    /// An entry carries the producer's newest write, by which a restart ages it like the running broker's sweep does: a
    /// failed lower sequence retried later is newer than the highest sequence's record. A version 1 file (no newest write)
    /// is still read, aged by that record.
    /// </summary>
    [Fact]
    public void An_entry_is_aged_by_the_producers_newest_write_and_a_version_1_file_by_its_record()
    {
        using var dir = new TempDirectory("fastbroker-checkpoint-v2");
        using var journal = FastBroker.Journal.JournalLog.Open(dir.Combine("j"), FastBroker.Journal.JournalOptions.Default with { SegmentSize = 64 << 10 });
        var topic = new TopicState("t", TopicOptions.Default, "t", journal, null); // persistent: the capture takes it
        var registry = new ProducerRegistry(1 << 16);
        registry.Record(Early, 25, topic, 70, timestamp: 1_000);
        registry.Record(Early, 23, topic, 77, timestamp: 1_019); // a failed message, retried after the highest
        new ProducerCheckpoint(dir.Path, null).WriteNow(registry, closing: true);

        (ulong, ulong, ulong, long)? Verify(string name, long offset) => offset == 70 ? (Early, 25, 0, 1_000) : null;
        var loaded = ProducerCheckpoint.Load(dir.Path, Verify, _ => topic, out var problem);
        Assert.Null(problem);
        Assert.Equal((Early, 25UL, 70L, 1_019L), (loaded[0].Producer, loaded[0].Highest, loaded[0].Offset, loaded[0].Timestamp));

        // The same entry as version 1 wrote it: no newest write.
        var v1 = new List<byte>();
        v1.AddRange("FBPS"u8.ToArray());
        v1.AddRange(BitConverter.GetBytes(1u));
        v1.AddRange(BitConverter.GetBytes(1u));
        v1.AddRange(BitConverter.GetBytes(Early));
        v1.AddRange(BitConverter.GetBytes(25UL));
        v1.AddRange(BitConverter.GetBytes(70L));
        v1.AddRange(BitConverter.GetBytes((ushort)1));
        v1.Add((byte)'t');
        v1.AddRange(BitConverter.GetBytes(FastBroker.Journal.Crc32C.Compute(v1.ToArray())));
        File.WriteAllBytes(Path.Combine(dir.Path, ProducerCheckpoint.FileName), [.. v1]);
        loaded = ProducerCheckpoint.Load(dir.Path, Verify, _ => topic, out problem);
        Assert.Null(problem);
        Assert.Equal((Early, 25UL, 70L, 1_000L), (loaded[0].Producer, loaded[0].Highest, loaded[0].Offset, loaded[0].Timestamp));
    }

    /// <summary>
    /// Each epoch is kept with its id's last use (the newest write here, after the epoch was given), by which a restart
    /// that knows the id from this file alone ages it. A version 3 file (epochs without last use) is still read, each
    /// epoch taken as last used when it was given (an epoch is at least the Unix ms it was given at).
    /// </summary>
    [Fact]
    public void The_epochs_carry_each_ids_last_use_and_a_version_3_file_is_still_read()
    {
        using var dir = new TempDirectory("fastbroker-checkpoint-v4");
        var topic = new TopicState("t", TopicOptions.Default with { Persistent = false }, "t", null, new TransientLog(16));
        var registry = new ProducerRegistry(64);
        Assert.Equal((0UL, 1_000UL), registry.Init(Early, 0, now: 1_000));
        registry.Record(Early, 0, topic, 0, timestamp: 5_000, epoch: 1_000);
        new ProducerCheckpoint(dir.Path, null).WriteNow(registry, closing: true);
        ProducerCheckpoint.Load(dir.Path, (_, _) => null, _ => null, out var problem, out var epochs);
        Assert.Null(problem);
        Assert.Equal([(Early, 1_000UL, 5_000L)], epochs);

        var v3 = new List<byte>();
        v3.AddRange("FBPS"u8.ToArray());
        v3.AddRange(BitConverter.GetBytes(3u));
        v3.AddRange(BitConverter.GetBytes(0u)); // no entries
        v3.AddRange(BitConverter.GetBytes(1u)); // one epoch
        v3.AddRange(BitConverter.GetBytes(Early));
        v3.AddRange(BitConverter.GetBytes(1_000UL));
        v3.AddRange(BitConverter.GetBytes(FastBroker.Journal.Crc32C.Compute(v3.ToArray())));
        File.WriteAllBytes(Path.Combine(dir.Path, ProducerCheckpoint.FileName), [.. v3]);
        ProducerCheckpoint.Load(dir.Path, (_, _) => null, _ => null, out problem, out epochs);
        Assert.Null(problem);
        Assert.Equal([(Early, 1_000UL, 1_000L)], epochs);
    }

    /// <summary>
    /// A promoted standby whose journal copy lacks a producer's newest record, with the primary's <c>producers.state</c>
    /// naming it (state files go whole, ahead of the records the standby still lacks), and that producer's older records
    /// beyond its rescan: the entry's previous place (the capture before, which named a record the copy holds) still
    /// vouches for them, so a retry of one is refused, not stored a second time; the newest, which the copy lacks, is
    /// stored once. The copy here is the primary's data directory as it was before that newest record.
    /// </summary>
    [Fact]
    public async Task A_copy_lacking_a_producers_newest_record_still_refuses_a_retry_beyond_its_rescan()
    {
        var log = new ConcurrentQueue<string>();
        await using var f = await BrokerFixture.StartAsync(SmallRescan);
        var sink = new ClaimPublishTests.RecordingSink();
        await PublishEarlyThenBusyAsync(f.Broker, sink); // Early's 0..9 out of the 64-record rescan
        using var copy = new TempDirectory("fastbroker-standby-copy");
        await RestartCopyingAsync(f, copy.Path); // its captures: Early at 9
        ClaimPublishTests.PublishIdempotent(f.Broker, sink, Early, 10, "t", "e10", 10);
        var stored = await sink.WaitForAsync(111);
        Assert.Equal((110L, BrokerErrorCode.None), stored.Where(o => o.Token == 10).Select(o => (o.Offset, o.Error)).Last());

        // The primary's producers.state now names Early at 10 (offset 110), which the copy's journal lacks.
        await RestartCopyingCheckpointAsync(f, copy.Path);

        await using var promoted = await OpenCopyAsync(copy.Path, log);
        Assert.Equal(110L, ClaimPublishTests.Head(promoted, "t"));
        var outcomes = await RetryEarlyAsync(promoted, "t", 5, 9, 10); // 5: stored at offset 5, beyond the rescan; 9: the previous place's own record; 10: lost with the failover, stored once
        Assert.True(outcomes[0].Error == BrokerErrorCode.InvalidArgument, $"the retry of Early's sequence 5, stored at offset 5 beyond the copy's rescan: {Describe(outcomes[0])}");
        Assert.Contains("older than", outcomes[0].Reason, StringComparison.Ordinal);
        Assert.Equal((9L, true, BrokerErrorCode.None), (outcomes[1].Offset, outcomes[1].Duplicate, outcomes[1].Error));
        Assert.Equal((110L, false, BrokerErrorCode.None), (outcomes[2].Offset, outcomes[2].Duplicate, outcomes[2].Error));
        Assert.Equal(111L, ClaimPublishTests.Head(promoted, "t"));
        Assert.Contains(log, l => l.Contains("not in this journal", StringComparison.Ordinal) && l.Contains("1 of them known from the record of their previous entry", StringComparison.Ordinal));
    }

    /// <summary>
    /// A standby receives <c>producers.state</c> at the primary's heartbeats, so at a high publish rate its copy may trail
    /// its journal copy by far more than the rescan: the open rescans each topic from where the capture was taken.
    /// </summary>
    [Fact]
    public async Task A_copy_whose_producers_state_trails_its_journal_by_more_than_the_rescan_refuses_a_retry_written_between()
    {
        var log = new ConcurrentQueue<string>();
        await using var f = await BrokerFixture.StartAsync(SmallRescan);
        var sink = new ClaimPublishTests.RecordingSink();
        ClaimPublishTests.PublishRun(f.Broker, sink, Early, 0, 5, "e");
        await sink.WaitForAsync(5);
        var trailing = Path.Combine(Path.GetTempPath(), $"fastbroker-trailing-{Guid.NewGuid():N}.state");
        await RestartKeepingCheckpointAsync(f, trailing); // Early at 4, taken at offset 5
        ClaimPublishTests.PublishRun(f.Broker, sink, Early, 5, 10, "e");
        ClaimPublishTests.PublishRun(f.Broker, sink, Busy, 0, 100, "b", 100); // Early's 5..9 out of the 64-record rescan
        await sink.WaitForAsync(110);

        // The copy's journal holds offsets 0 to 109, its producers.state is the capture taken at offset 5.
        using var copy = new TempDirectory("fastbroker-trailing-copy");
        await RestartCopyingAsync(f, copy.Path);
        InstallCheckpoint(trailing, copy.Path);

        await using var promoted = await OpenCopyAsync(copy.Path, log);
        Assert.Equal(110L, ClaimPublishTests.Head(promoted, "t"));
        var outcomes = await RetryEarlyAsync(promoted, "t", 7, 2, 10); // 7: stored at offset 7, after the capture and beyond the rescan; 2: stored before the capture, beyond the rescan, refused; 10: new, stored once
        Assert.True((outcomes[0].Offset, outcomes[0].Duplicate, outcomes[0].Error) == (7L, true, BrokerErrorCode.None), $"the retry of Early's sequence 7, stored at offset 7 after the copy's producers.state was captured and beyond the 64-record rescan: {Describe(outcomes[0])}");
        Assert.Equal(BrokerErrorCode.InvalidArgument, outcomes[1].Error);
        Assert.Contains("older than", outcomes[1].Reason, StringComparison.Ordinal);
        Assert.Equal((110L, false, BrokerErrorCode.None), (outcomes[2].Offset, outcomes[2].Duplicate, outcomes[2].Error));
        Assert.Equal(111L, ClaimPublishTests.Head(promoted, "t"));
    }

    /// <summary>
    /// Each entry keeps the place the capture just before its present one gave (kept while the producer writes nothing
    /// new), which the load takes when the journal lacks the present one's record and holds the previous one's. A
    /// producer that capture gave no entry (its newest record transient) has no previous place. An entry neither of whose
    /// records the journal holds is ignored. A version 4 file (no previous place) is still read.
    /// </summary>
    [Fact]
    public void An_entry_keeps_its_previous_place_for_a_journal_lacking_its_newest_record_and_a_version_4_file_is_still_read()
    {
        using var dir = new TempDirectory("fastbroker-checkpoint-v5");
        using var journal = FastBroker.Journal.JournalLog.Open(dir.Combine("j"), FastBroker.Journal.JournalOptions.Default with { SegmentSize = 64 << 10 });
        var topic = new TopicState("t", TopicOptions.Default, "t", journal, null);
        var fleeting = new TopicState("fleeting", TopicOptions.Default with { Persistent = false }, "fleeting", null, new TransientLog(16));
        var registry = new ProducerRegistry(1 << 16);
        var checkpoint = new ProducerCheckpoint(dir.Path, null);
        registry.Record(Early, 9, topic, 9, timestamp: 1_000);
        registry.Record(Busy, 1, topic, 20, timestamp: 1_000);
        checkpoint.WriteNow(registry, closing: false);
        registry.Record(Early, 10, topic, 110, timestamp: 2_000);
        registry.Record(Busy, 2, fleeting, 0, timestamp: 2_000); // no entry in this capture
        checkpoint.WriteNow(registry, closing: false);
        registry.Record(Busy, 3, topic, 30, timestamp: 3_000);
        checkpoint.WriteNow(registry, closing: true); // nothing new of Early: its previous place stays

        // A journal lacking offsets 110 and 30: Busy's sequence 2 came after the capture that named sequence 1 at 20.
        (ulong, ulong, ulong, long)? Copy(string name, long offset) => offset switch { 9 => (Early, 9, 0, 1_000), 20 => (Busy, 1, 0, 1_000), _ => null };
        var loaded = ProducerCheckpoint.Load(dir.Path, Copy, _ => topic, out var problem);
        Assert.Equal([(Early, 9UL, 9L, 2_000L)], loaded.Select(e => (e.Producer, e.Highest, e.Offset, e.Timestamp)));
        Assert.Contains("2 of 2 producers' newest records are not in this journal", problem, StringComparison.Ordinal);
        Assert.Contains("1 of them known from the record of their previous entry, which it holds, 1 from the records the open rescans only", problem, StringComparison.Ordinal);

        (ulong, ulong, ulong, long)? All(string name, long offset) => offset switch { 110 => (Early, 10, 0, 2_000), 30 => (Busy, 3, 0, 3_000), _ => Copy(name, offset) };
        loaded = ProducerCheckpoint.Load(dir.Path, All, _ => topic, out problem);
        Assert.Null(problem);
        Assert.Equal([(Busy, 3UL, 30L, 3_000L), (Early, 10UL, 110L, 2_000L)], loaded.Select(e => (e.Producer, e.Highest, e.Offset, e.Timestamp)).OrderBy(e => e.Producer));

        loaded = ProducerCheckpoint.Load(dir.Path, (_, _) => null, _ => topic, out problem);
        Assert.Empty(loaded);
        Assert.Contains("0 of them known from the record of their previous entry, which it holds, 2 from the records the open rescans only", problem, StringComparison.Ordinal);

        // The same entry as version 4 wrote it: no previous place.
        var v4 = new List<byte>();
        v4.AddRange("FBPS"u8.ToArray());
        v4.AddRange(BitConverter.GetBytes(4u));
        v4.AddRange(BitConverter.GetBytes(1u));
        v4.AddRange(BitConverter.GetBytes(Early));
        v4.AddRange(BitConverter.GetBytes(10UL));
        v4.AddRange(BitConverter.GetBytes(110L));
        v4.AddRange(BitConverter.GetBytes(2_000L));
        v4.AddRange(BitConverter.GetBytes((ushort)1));
        v4.Add((byte)'t');
        v4.AddRange(BitConverter.GetBytes(0u)); // no epochs
        v4.AddRange(BitConverter.GetBytes(FastBroker.Journal.Crc32C.Compute(v4.ToArray())));
        File.WriteAllBytes(Path.Combine(dir.Path, ProducerCheckpoint.FileName), [.. v4]);
        loaded = ProducerCheckpoint.Load(dir.Path, All, _ => topic, out problem);
        Assert.Null(problem);
        Assert.Equal([(Early, 10UL, 110L, 2_000L)], loaded.Select(e => (e.Producer, e.Highest, e.Offset, e.Timestamp)));
        Assert.Empty(ProducerCheckpoint.Load(dir.Path, Copy, _ => topic, out problem));
        Assert.Contains("1 from the records the open rescans only", problem, StringComparison.Ordinal);
    }
}
