using System.Diagnostics;
using FastBroker.Replication;
using FastBroker.Testing;

namespace FastBroker.ReplicationTests;

/// <summary>
/// <see cref="LeaseKeeper"/>, what a primary runs: it keeps the lease while the witness answers, and it stops believing
/// in it before the witness could grant it to anyone else.
/// </summary>
public class WitnessLeaseKeeperTests
{
    [Fact]
    public async Task TryStart_returns_null_when_another_node_holds_the_lease()
    {
        await using var f = await WitnessFixture.StartAsync();
        Assert.True((await f.Client().AcquireAsync("node-b", 0, TimeSpan.FromSeconds(10))).IsGranted);

        var keeper = await LeaseKeeper.TryStartAsync(f.Client(), "node-a", 0, TimeSpan.FromSeconds(1));

        Assert.Null(keeper);
    }

    [Fact]
    public async Task While_the_keeper_is_valid_no_other_node_is_ever_granted_the_lease()
    {
        await using var f = await WitnessFixture.StartAsync(o => o with { SafetyMargin = TimeSpan.FromMilliseconds(20) });
        var lost = new TaskCompletionSource<string>(TaskCreationOptions.RunContinuationsAsynchronously);
        var ttl = TimeSpan.FromMilliseconds(400);
        var client = await WarmClientAsync(f);
        await using var keeper = await StartAsync(() => LeaseKeeper.TryStartAsync(client, "node-a", 0, ttl, onLost: r => lost.TrySetResult(r)));
        Assert.Equal((1L, TimeSpan.FromMilliseconds(100)), (keeper.Epoch, keeper.RenewInterval));

        // The standby keeps asking while the keeper renews, for longer than one TTL (5 renewals = 500 ms > 400 ms).
        var standby = f.Client();
        var attempts = 0;
        var result = await WitnessFixture.UntilAsync(
            () => standby.AcquireAsync("node-b", 0, TimeSpan.FromSeconds(10)),
            r => r.IsGranted || keeper.Renewals >= 5,
            "the keeper renews five times",
            each: r =>
            {
                attempts++;
                if (keeper.IsValid)
                {
                    // Read after the answer: a keeper still valid now held the lease when the witness decided.
                    Assert.Equal((LeaseResultKind.Denied, "node-a", 1L), (r.Kind, r.Holder, r.Epoch));
                }
            });

        Assert.True(attempts > 0);
        if (result.IsGranted)
        {
            // Only possible if this machine stalled the keeper for most of a TTL: then it must know it lost the lease.
            Assert.False(keeper.IsValid);
            await Eventually.Completes(lost.Task);
        }
        else
        {
            Assert.Equal(1, keeper.Epoch);
            Assert.Equal(("node-a", 1L), (f.Server.Holder, f.Server.Epoch));
        }
    }

    [Fact]
    public async Task The_keeper_reports_Lost_and_turns_invalid_when_the_witness_stops()
    {
        await using var f = await WitnessFixture.StartAsync();
        var lost = new TaskCompletionSource<string>(TaskCreationOptions.RunContinuationsAsynchronously);
        var lostCount = 0;
        var client = await WarmClientAsync(f, TimeSpan.FromSeconds(5));
        await using var keeper = await StartAsync(() => LeaseKeeper.TryStartAsync(client, "node-a", 0, TimeSpan.FromSeconds(1), onLost: r =>
        {
            Interlocked.Increment(ref lostCount);
            lost.TrySetResult(r);
        }));
        await Eventually.TrueAsync(() => keeper.Renewals >= 1 || lost.Task.IsCompleted, "a first renewal (or a loss, on a stalled machine)");

        await f.Server.StopAsync();
        var reason = await Eventually.Completes(lost.Task);

        Assert.False(keeper.IsValid);
        Assert.Contains("no successful renewal", reason, StringComparison.Ordinal);
        Assert.Equal(1, keeper.Epoch);
        await f.RestartAsync(); // the witness is back, but a lost keeper stays lost (a new one must be started)
        await Eventually.TrueAsync(() => f.Server.Holder == "node-a", "restarted");
        Assert.False(keeper.IsValid);
        Assert.Equal(1, Volatile.Read(ref lostCount));
    }

    /// <summary>
    /// A witness grants at most its MaxTtl (10 s for <c>fastbroker witness</c>), while a node may ask for up to 60 s (twice
    /// a heartbeat timeout of up to 30 s). The keeper renewed every quarter of the TTL it asked for, so a node asking for
    /// 10 s from a witness granting 1 s renewed every 2.5 s a lease it believed in for 0.9 s: it lost the lease after
    /// every grant. It now renews every quarter of what the witness grants.
    /// </summary>
    [Fact]
    public async Task The_keeper_keeps_a_lease_the_witness_grants_shorter_than_asked()
    {
        // A 3 s grant, not 1 s: a keeper renewing every quarter of it has 2.25 s of slack for a loaded machine's stalls
        // (a 1 s grant once lost the lease before the first renewal ran, on a cold start in a full CI run).
        await using var f = await WitnessFixture.StartAsync(o => o with { MaxTtl = TimeSpan.FromSeconds(3) });
        var lost = new TaskCompletionSource<string>(TaskCreationOptions.RunContinuationsAsynchronously);
        var client = await WarmClientAsync(f, TimeSpan.FromSeconds(5));
        await using var keeper = await StartAsync(() => LeaseKeeper.TryStartAsync(client, "node-a", 0, TimeSpan.FromSeconds(30), onLost: r => lost.TrySetResult(r)));

        // Six renewals take 4.5 s, longer than the 3 s granted: only a keeper renewing within the grant gets there (one
        // renewing every quarter of the 30 s asked for would renew first at 7.5 s).
        await Eventually.TrueAsync(() => keeper.Renewals >= 6 || lost.Task.IsCompleted, "six renewals (or the loss of the lease)");

        if (lost.Task.IsCompleted)
        {
            Assert.Fail($"lost the lease after {keeper.Renewals} renewal(s), renewing every {keeper.RenewInterval.TotalMilliseconds:0} ms a 3000 ms grant: {await lost.Task}");
        }

        Assert.Equal((TimeSpan.FromSeconds(30), TimeSpan.FromMilliseconds(750)), (keeper.Ttl, keeper.RenewInterval));
        Assert.Equal(("node-a", 1L), (f.Server.Holder, f.Server.Epoch));
    }

    [Fact]
    public async Task The_keeper_reports_Lost_when_a_renewal_is_denied()
    {
        await using var f = await WitnessFixture.StartAsync();
        var lost = new TaskCompletionSource<string>(TaskCreationOptions.RunContinuationsAsynchronously);
        await using var keeper = await StartAsync(() => LeaseKeeper.TryStartAsync(f.Client(), "node-a", 0, TimeSpan.FromSeconds(5), TimeSpan.FromMilliseconds(50), r => lost.TrySetResult(r)));

        // A second witness over another directory, where node-b holds the lease, takes over the same port: node-a's
        // renewals now reach a witness that (having just started) protects node-b for MaxTtl.
        await using (var other = await WitnessFixture.StartAsync())
        {
            Assert.True((await other.Client().AcquireAsync("node-b", 4, TimeSpan.FromSeconds(10))).IsGranted);
            await other.Server.StopAsync();
            var port = f.Server.EndPoint.Port;
            await f.Server.StopAsync();
            await using var takeover = await SamePort.RebindAsync(() => WitnessServer.StartAsync(other.Options with { Port = port }));

            var reason = await Eventually.Completes(lost.Task);

            Assert.Contains("renewal denied: node-b holds the lease at epoch 5", reason, StringComparison.Ordinal);
            Assert.False(keeper.IsValid);
        }
    }

    [Fact]
    public async Task Release_turns_the_keeper_invalid_and_frees_the_lease_at_once()
    {
        await using var f = await WitnessFixture.StartAsync();
        var lost = false;
        var keeper = await LeaseKeeper.TryStartAsync(f.Client(), "node-a", 3, TimeSpan.FromSeconds(10), onLost: _ => lost = true);
        Assert.NotNull(keeper);
        Assert.True(keeper.IsValid);
        Assert.Equal(4, keeper.Epoch);

        var released = await keeper.ReleaseAsync();
        var standby = await f.Client().AcquireAsync("node-b", 4, TimeSpan.FromSeconds(10));

        Assert.Equal(LeaseResultKind.Released, released.Kind);
        Assert.False(keeper.IsValid);
        Assert.Equal((LeaseResultKind.Granted, 5L), (standby.Kind, standby.Epoch));
        await keeper.DisposeAsync();
        Assert.False(lost);
    }

    [Fact]
    public async Task TryStart_checks_its_arguments()
    {
        await using var f = await WitnessFixture.StartAsync();
        var c = f.Client();

        await Assert.ThrowsAsync<ArgumentOutOfRangeException>(() => LeaseKeeper.TryStartAsync(c, "node-a", 0, TimeSpan.FromSeconds(1), TimeSpan.FromSeconds(1)));
        await Assert.ThrowsAsync<ArgumentOutOfRangeException>(() => LeaseKeeper.TryStartAsync(c, "node-a", 0, TimeSpan.FromMilliseconds(10)));
        await Assert.ThrowsAsync<ArgumentException>(() => LeaseKeeper.TryStartAsync(c, "node a", 0, TimeSpan.FromSeconds(1)));
        Assert.Null(f.Server.Holder);
    }

    /// <summary>
    /// Starts a keeper for a lease nobody else holds. TryStart answers null when the grant arrives too late to be of
    /// use (a stalled machine); asking again renews the same lease, as a primary would.
    /// </summary>
    private static async Task<LeaseKeeper> StartAsync(Func<Task<LeaseKeeper?>> tryStart)
    {
        var deadline = Stopwatch.StartNew();
        while (true)
        {
            if (await tryStart() is { } keeper)
            {
                return keeper;
            }

            Assert.True(deadline.Elapsed < Eventually.DefaultTimeout, "no keeper could start");
        }
    }

    /// <summary>A client whose connection is open and whose code paths have run once, so a short TTL measures the lease, not the JIT.</summary>
    private static async Task<WitnessClient> WarmClientAsync(WitnessFixture f, TimeSpan? callTimeout = null)
    {
        var client = f.Client(callTimeout);
        Assert.Equal(LeaseResultKind.Status, (await client.StatusAsync()).Kind);
        Assert.Equal(LeaseResultKind.Released, (await client.ReleaseAsync("warm-up")).Kind);
        return client;
    }
}
