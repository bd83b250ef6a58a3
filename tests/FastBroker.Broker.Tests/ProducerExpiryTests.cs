using FastBroker.Engine;
using FastBroker.Testing;

namespace FastBroker.BrokerTests;

/// <summary>
/// Idle idempotent producers do not pile up: after <see cref="BrokerOptions.ProducerIdleTimeout"/> a producer keeps only
/// its newest sequence, after <see cref="BrokerOptions.ProducerExpiry"/> it is forgotten, and a restart does not bring a
/// forgotten producer back from its old records (rescan or checkpoint). Before, every producer id ever seen kept its
/// window (up to 1.5 MB) until the broker closed, and the .NET client draws a new id per instance.
/// </summary>
public sealed class ProducerExpiryTests
{
    private const int Window = 1 << 16;
    private const ulong Early = 0x0E0E_0E0E_0E0E_0E07;
    private const ulong Busy = 0x0B0B_0B0B_0B0B_0B08;
    private static readonly TopicState s_a = new("a", TopicOptions.Default with { Persistent = false }, "a", null, new TransientLog(16));

    [Fact]
    public void An_idle_producer_keeps_only_its_newest_sequence_and_an_expired_one_is_forgotten()
    {
        var registry = new ProducerRegistry(Window, idleMs: 1_000, expiryMs: 10_000);
        for (ulong s = 0; s < 1_000; s++)
        {
            registry.Record(7, s, s_a, (long)s, timestamp: 100);
        }

        registry.Record(8, 0, s_a, 1_000, timestamp: 5_000);

        registry.Sweep(1_099); // 7 idle for 999 ms: untouched
        Assert.Equal(ProducerRegistry.Verdict.Duplicate, registry.Check(7, 500, out _, out var offset, out _));
        Assert.Equal(500L, offset);

        registry.Sweep(1_100); // 7 idle for 1 s: shrunk to its newest
        Assert.Equal(ProducerRegistry.Verdict.TooOld, registry.Check(7, 500, out _, out _, out _));
        Assert.Equal(ProducerRegistry.Verdict.Duplicate, registry.Check(7, 999, out _, out offset, out _));
        Assert.Equal(999L, offset);
        Assert.Equal(ProducerRegistry.Verdict.New, registry.Check(7, 1_000, out _, out _, out _));
        Assert.Equal(1_000UL, registry.NextSequence(7));
        Assert.Equal(ProducerRegistry.Verdict.Duplicate, registry.Check(8, 0, out _, out _, out _)); // its clock is ahead: not idle

        // It writes again: its window grows from the newest sequence on.
        registry.Record(7, 1_000, s_a, 1_001, timestamp: 1_200);
        registry.Record(7, 1_001, s_a, 1_002, timestamp: 1_200);
        Assert.Equal(ProducerRegistry.Verdict.Duplicate, registry.Check(7, 1_000, out _, out offset, out _));
        Assert.Equal(1_001L, offset);

        registry.Sweep(11_200); // 7 idle for 10 s: forgotten; 8 idle for 6.2 s: shrunk only
        Assert.Equal(1, registry.Count);
        Assert.Equal(0UL, registry.NextSequence(7));
        Assert.Equal(ProducerRegistry.Verdict.New, registry.Check(7, 500, out _, out _, out _));
        Assert.Equal(1UL, registry.NextSequence(8));
        Assert.True(registry.Expired(1_200, 11_200));
        Assert.False(registry.Expired(1_201, 11_200));
    }

    [Fact]
    public void The_sweep_goes_round_all_producers_and_forgets_exactly_the_expired_ones()
    {
        var registry = new ProducerRegistry(Window, idleMs: 1_000, expiryMs: 10_000);
        for (ulong id = 1; id <= 1_000; id++)
        {
            // Odd ids wrote recently, even ids long ago.
            registry.Record(id, id * 3, s_a, (long)id, timestamp: id % 2 == 1 ? 50_000 : 0);
        }

        // 64 producers a call, at most one call a millisecond: 16 calls reach all 1,000 once.
        for (var now = 50_000L; now < 50_000 + 32; now++)
        {
            registry.Sweep(now);
            registry.Sweep(now); // the same millisecond again: nothing more
        }

        Assert.Equal(500, registry.Count);
        for (ulong id = 1; id <= 1_000; id++)
        {
            Assert.Equal(id % 2 == 1 ? (id * 3) + 1 : 0, registry.NextSequence(id));
        }

        // A clock that went back makes nobody idle.
        for (var now = 0L; now < 32; now++)
        {
            registry.Sweep(now);
        }

        Assert.Equal(500, registry.Count);
    }

    [Fact]
    public async Task A_producer_idle_past_the_timeout_has_its_older_retries_refused_while_the_broker_runs()
    {
        await using var f = await BrokerFixture.StartAsync(o => o with { ProducerIdleTimeout = TimeSpan.FromMilliseconds(20), ProducerExpiry = Timeout.InfiniteTimeSpan });
        var sink = new ClaimPublishTests.RecordingSink();
        for (var i = 0UL; i < 10; i++)
        {
            ClaimPublishTests.PublishIdempotent(f.Broker, sink, Early, i, "t", $"e{i}", i);
        }

        await sink.WaitForAsync(10);

        // Each round another producer's message starts a batch (the sweep runs with batches), then the early producer
        // retries sequence 5: a duplicate while its window is whole, refused once it shrank. Never stored again.
        var busy = 0UL;
        var refused = false;
        await Eventually.TrueAsync(() =>
        {
            var round = new ClaimPublishTests.RecordingSink();
            ClaimPublishTests.PublishIdempotent(f.Broker, round, Busy, busy++, "t", "filler", 0);
            ClaimPublishTests.PublishIdempotent(f.Broker, round, Early, 5, "t", "e5", 1);
            var outcomes = round.WaitForAsync(2).Result;
            var retry = outcomes.Single(o => o.Token == 1);
            Assert.True(retry.Error == BrokerErrorCode.InvalidArgument || (retry.Duplicate && retry.Offset == 5), $"the retry of sequence 5 was {retry}");
            refused = retry.Error == BrokerErrorCode.InvalidArgument;
            return refused;
        }, "the idle producer's window shrank", TimeSpan.FromSeconds(30));

        // Its newest sequence is still known, and its next one is new.
        var after = new ClaimPublishTests.RecordingSink();
        ClaimPublishTests.PublishIdempotent(f.Broker, after, Early, 9, "t", "e9", 1);
        ClaimPublishTests.PublishIdempotent(f.Broker, after, Early, 10, "t", "e10", 2);
        var last = await after.WaitForAsync(2);
        Assert.Equal((9L, true), (last.Single(o => o.Token == 1).Offset, last.Single(o => o.Token == 1).Duplicate));
        Assert.Equal((10L + (long)busy, false), (last.Single(o => o.Token == 2).Offset, last.Single(o => o.Token == 2).Duplicate));
        Assert.Equal(11UL, f.Broker.NextProducerSequence(Early));
    }

    [Fact]
    public async Task An_expired_producer_is_forgotten_while_the_broker_runs()
    {
        await using var f = await BrokerFixture.StartAsync(o => o with { ProducerIdleTimeout = TimeSpan.FromMilliseconds(10), ProducerExpiry = TimeSpan.FromMilliseconds(20) });
        var sink = new ClaimPublishTests.RecordingSink();
        for (var i = 0UL; i < 10; i++)
        {
            ClaimPublishTests.PublishIdempotent(f.Broker, sink, Early, i, "t", $"e{i}", i);
        }

        await sink.WaitForAsync(10);
        Assert.Equal(10UL, f.Broker.NextProducerSequence(Early)); // nothing published since: no sweep yet

        var filler = new ClaimPublishTests.RecordingSink();
        var busy = 0UL;
        await Eventually.TrueAsync(() =>
        {
            ClaimPublishTests.PublishIdempotent(f.Broker, filler, Busy, busy, "t", "filler", busy);
            filler.WaitForAsync((int)++busy).Wait();
            return f.Broker.NextProducerSequence(Early) == 0;
        }, "the expired producer was forgotten", TimeSpan.FromSeconds(30));
    }

    /// <summary>
    /// Its records are still in the journal (and in the checkpoint written at close): a broker opened with a shorter
    /// expiry does not rebuild it from either; the same files opened with the default do.
    /// </summary>
    [Fact]
    public async Task A_restart_does_not_bring_back_a_producer_whose_records_are_older_than_the_expiry()
    {
        await using var f = await BrokerFixture.StartAsync();
        var sink = new ClaimPublishTests.RecordingSink();
        for (var i = 0UL; i < 10; i++)
        {
            ClaimPublishTests.PublishIdempotent(f.Broker, sink, Early, i, "t", $"e{i}", i);
        }

        await sink.WaitForAsync(10);
        var written = DateTimeOffset.UtcNow.ToUnixTimeMilliseconds();
        await f.RestartAsync();
        Assert.True(File.Exists(Path.Combine(f.DataDirectory, ProducerCheckpoint.FileName)));
        Assert.True(ProducerCheckpointFile.Names(Path.Combine(f.DataDirectory, ProducerCheckpoint.FileName), Early), "the checkpoint names the producer");
        Assert.Equal(10UL, f.Broker.NextProducerSequence(Early));

        Eventually.True(() => DateTimeOffset.UtcNow.ToUnixTimeMilliseconds() - written >= 50, "50 ms since the records were written", TimeSpan.FromSeconds(10));
        await f.RestartAsync(o => o with { ProducerIdleTimeout = TimeSpan.FromMilliseconds(50), ProducerExpiry = TimeSpan.FromMilliseconds(50) });
        Assert.Equal(0UL, f.Broker.NextProducerSequence(Early));
    }
}
