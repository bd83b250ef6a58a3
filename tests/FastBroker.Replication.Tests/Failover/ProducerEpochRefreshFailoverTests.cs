using FastBroker.Engine;
using FastBroker.Replication;
using FastBroker.Testing;

namespace FastBroker.ReplicationTests.Failover;

/// <summary>
/// The primary's timer refreshes <c>producers.epochs</c> without a new epoch (no state version is raised for it): the
/// standby's copy follows at the primary's next heartbeat check, which compares the file's length and time, so a
/// promoted standby ages each id by the last use the primary's refresh wrote and forgets the ids the primary forgot.
/// Both nodes run on the test's producer clock (<see cref="ManualClock"/>): a 4 s epoch retention, refreshed once a
/// second of it.
/// </summary>
public sealed class ProducerEpochRefreshFailoverTests
{
    private const ulong Id = 0x0E90_C400_0000_0031;
    private const ulong Other = 0x0E90_C400_0000_0032;

    [Fact]
    public async Task A_standby_promoted_after_a_refresh_ages_and_forgets_the_ids_as_the_primary_did()
    {
        var clock = new ManualClock();
        var options = BrokerOptions.Default with
        {
            StampClock = clock,
            DefaultTopicOptions = TopicOptions.Default with { Acks = AckMode.StandbyDurable }, // a new epoch is b's before it is answered
            ProducerIdleTimeout = TimeSpan.FromSeconds(1),
            ProducerExpiry = TimeSpan.FromSeconds(2),
            ProducerEpochRetention = TimeSpan.FromSeconds(4),
        };
        using var dir = new TempDirectory();
        var (a, b) = await InProcessPair.StartAsync(dir, options);
        await using (a)
        await using (b)
        {
            var copy = Path.Combine(dir.Combine("b"), ProducerEpochFile.FileName);
            var (_, old) = await a.Broker!.InitProducerAsync(Id);
            await a.Broker!.InitProducerAsync(Other);
            clock.Advance(TimeSpan.FromMilliseconds(1));
            var (_, current) = await a.Broker!.InitProducerAsync(Id); // neither instance of either id writes
            await a.Broker!.InitProducerAsync(Other);
            Assert.Equal((long)current, SeenIn(copy, Id));

            // The new instance of Id resumes 3 s later (a reconnect): its last use moves, no epoch is given. The clock
            // moves a second more, so a refresh is due after the resume whether or not one came just before it.
            clock.Advance(TimeSpan.FromSeconds(3));
            var resumed = clock.GetUtcNow().ToUnixTimeMilliseconds();
            Assert.Equal(current, (await a.Broker!.InitProducerAsync(Id, current)).Epoch);
            clock.Advance(TimeSpan.FromSeconds(1));
            await Eventually.TrueAsync(
                () => SeenIn(copy, Id) == resumed,
                $"b's copy of producers.epochs gives {Id:x16}'s last use {resumed} (its resume; epoch {current} given at {current}) after a's refresh",
                TimeSpan.FromSeconds(30));

            // 2 s more: Other, last in use 6 s ago, is past the 4 s retention; Id, 3 s ago, is not.
            clock.Advance(TimeSpan.FromSeconds(2));
            await Eventually.TrueAsync(
                () => !ProducerCheckpointFile.Names(copy, Other),
                $"b's copy of producers.epochs leaves out {Other:x16}, last in use 6 s ago (retention 4 s), after a's refresh",
                TimeSpan.FromSeconds(30));
            Assert.Equal(resumed, SeenIn(copy, Id)); // Id stays, with its last use
            Assert.Equal(0UL, a.Broker!.Producers.Fence(Other)); // a forgot it too
            Assert.Equal(current, a.Broker!.Producers.Fence(Id));

            await a.DisposeAsync();
            await b.PromoteAsync();
            Assert.Equal(NodeRole.Primary, b.Role);

            // Id is kept for the retention after its resume (3 s ago), not after its epoch was given (6 s ago): still fenced.
            var resume = Record.Exception(() => b.Broker!.InitProducer(Id, old));
            Assert.True(resume is BrokerException { Code: BrokerErrorCode.ProducerFenced }, $"the replaced instance of {Id:x16} (epoch {old}, replaced by {current}, last in use 3 s ago) on the promoted standby: {resume?.Message ?? "accepted"}");
            Assert.Equal(current, b.Broker!.InitProducer(Id, current).Epoch);

            // Other was forgotten on both: no epoch of it fences on b, as none did on a.
            Assert.Equal(0UL, b.Broker!.Producers.Fence(Other));
        }
    }

    /// <summary>The last use <paramref name="path"/> gives <paramref name="producer"/> (-1 when it names it not, or cannot be read whole).</summary>
    private static long SeenIn(string path, ulong producer)
    {
        var epochs = ProducerEpochFile.Load(Path.GetDirectoryName(path)!, now: -1, out var problem);
        return problem is null && epochs.FirstOrDefault(e => e.Producer == producer) is { Producer: not 0 } e ? e.Seen : -1;
    }
}
