using FastBroker.Replication;
using FastBroker.Testing;

namespace FastBroker.ReplicationTests;

/// <summary>The lease rules of the witness, over real TCP: who is granted, at which epoch, and who is denied.</summary>
public class WitnessLeaseTests
{
    private static readonly TimeSpan s_long = TimeSpan.FromSeconds(10); // outlives any stall of a loaded machine

    [Fact]
    public async Task The_first_grant_gets_epoch_1_and_is_persisted()
    {
        await using var f = await WitnessFixture.StartAsync();
        var a = f.Client();
        Assert.Equal(LeaseResultKind.Status, (await a.StatusAsync()).Kind);
        Assert.Null((await a.StatusAsync()).Holder);

        var r = await a.AcquireAsync("node-a", 0, s_long);

        Assert.Equal(LeaseResultKind.Granted, r.Kind);
        Assert.Equal(1, r.Epoch);
        Assert.Equal(s_long, r.Ttl);
        Assert.Equal("node-a", f.Server.Holder);
        Assert.Equal(1, f.Server.Epoch);
        Assert.Equal("fastbroker-witness 1\nholder node-a\nepoch 1\nstandby in-sync\n", await File.ReadAllTextAsync(f.StatePath));
        var status = await a.StatusAsync();
        Assert.Equal(("node-a", 1L), (status.Holder, status.Epoch));
        Assert.InRange(status.Remaining, TimeSpan.FromMilliseconds(1), s_long);
    }

    [Fact]
    public async Task Renewal_by_the_holder_keeps_the_epoch()
    {
        await using var f = await WitnessFixture.StartAsync();
        var a = f.Client();
        Assert.Equal(1, (await a.AcquireAsync("node-a", 0, s_long)).Epoch);

        var renewed = await a.AcquireAsync("node-a", 1, s_long);
        var again = await a.AcquireAsync("node-a", 1, s_long);

        Assert.Equal((LeaseResultKind.Granted, 1L), (renewed.Kind, renewed.Epoch));
        Assert.Equal((LeaseResultKind.Granted, 1L), (again.Kind, again.Epoch));
        Assert.Equal(1, f.Server.Epoch);
    }

    [Fact]
    public async Task Another_node_is_denied_while_the_lease_is_valid()
    {
        await using var f = await WitnessFixture.StartAsync();
        Assert.True((await f.Client().AcquireAsync("node-a", 0, s_long)).IsGranted);

        var b = f.Client();
        var denied = await b.AcquireAsync("node-b", 0, s_long);
        var deniedAgain = await b.AcquireAsync("node-b", 7, TimeSpan.FromMilliseconds(50));

        Assert.Equal(LeaseResultKind.Denied, denied.Kind);
        Assert.Equal(("node-a", 1L), (denied.Holder, denied.Epoch));
        Assert.InRange(denied.Remaining, TimeSpan.FromMilliseconds(1), s_long + f.Options.SafetyMargin);
        Assert.Equal(LeaseResultKind.Denied, deniedAgain.Kind);
        Assert.Equal(("node-a", 1L), (f.Server.Holder, f.Server.Epoch));
        Assert.Single(f.Log, l => l.Contains("denied node-b", StringComparison.Ordinal)); // one line per run of denials
    }

    [Fact]
    public async Task After_expiry_another_node_is_granted_the_next_epoch()
    {
        await using var f = await WitnessFixture.StartAsync(o => o with { SafetyMargin = TimeSpan.FromMilliseconds(20) });
        var a = f.Client();
        var b = f.Client();
        Assert.Equal(1, (await a.AcquireAsync("node-a", 0, TimeSpan.FromMilliseconds(100))).Epoch);

        var granted = await WitnessFixture.UntilAsync(
            () => b.AcquireAsync("node-b", 1, s_long),
            r => r.Kind != LeaseResultKind.Denied,
            "node-a's 100 ms lease runs out",
            each: r => Assert.True(r.Kind is LeaseResultKind.Denied or LeaseResultKind.Granted, r.ToString()));

        Assert.Equal((LeaseResultKind.Granted, 2L), (granted.Kind, granted.Epoch));
        Assert.Equal(("node-b", 2L), (f.Server.Holder, f.Server.Epoch));
        var aDenied = await a.AcquireAsync("node-a", 1, TimeSpan.FromMilliseconds(100));
        Assert.Equal((LeaseResultKind.Denied, "node-b", 2L), (aDenied.Kind, aDenied.Holder, aDenied.Epoch));
    }

    [Fact]
    public async Task A_new_epoch_is_above_both_the_witness_and_the_caller_epoch()
    {
        await using var f = await WitnessFixture.StartAsync();
        var a = f.Client();
        var b = f.Client();

        Assert.Equal(8, (await a.AcquireAsync("node-a", 7, TimeSpan.FromMilliseconds(50))).Epoch);
        Assert.Equal(LeaseResultKind.Released, (await a.ReleaseAsync("node-a")).Kind);
        Assert.Equal(9, (await b.AcquireAsync("node-b", 3, s_long)).Epoch);
    }

    [Fact]
    public async Task The_holder_whose_lease_expired_renews_at_the_same_epoch()
    {
        await using var f = await WitnessFixture.StartAsync();
        var a = f.Client();
        Assert.Equal(1, (await a.AcquireAsync("node-a", 0, TimeSpan.FromMilliseconds(50))).Epoch);
        await WitnessFixture.UntilAsync(() => a.StatusAsync(), r => r.Remaining == TimeSpan.Zero, "the 50 ms lease runs out");

        var renewed = await a.AcquireAsync("node-a", 1, s_long);

        Assert.Equal((LeaseResultKind.Granted, 1L), (renewed.Kind, renewed.Epoch));
        Assert.Equal(LeaseResultKind.Denied, (await f.Client().AcquireAsync("node-b", 1, s_long)).Kind);
    }

    /// <summary>
    /// A holder that began a later epoch on its own (a primary whose host restarted begins one at its heads) asks at it:
    /// the witness moves its epoch there, on disk before it answers, so the next node it grants the lease to gets a
    /// later one, never that number again under another leader.
    /// </summary>
    [Fact]
    public async Task A_holder_asking_at_a_later_epoch_moves_the_witness_epoch_there()
    {
        await using var f = await WitnessFixture.StartAsync(o => o with { SafetyMargin = TimeSpan.FromMilliseconds(20) });
        var a = f.Client();
        var b = f.Client();
        Assert.Equal(1, (await a.AcquireAsync("node-a", 0, s_long)).Epoch);

        var begun = await a.AcquireAsync("node-a", 2, TimeSpan.FromMilliseconds(100));

        Assert.Equal((LeaseResultKind.Granted, 2L), (begun.Kind, begun.Epoch));
        Assert.Equal(("node-a", 2L), (f.Server.Holder, f.Server.Epoch));
        Assert.Equal("fastbroker-witness 1\nholder node-a\nepoch 2\nstandby in-sync\n", await File.ReadAllTextAsync(f.StatePath));
        var lower = await a.AcquireAsync("node-a", 1, TimeSpan.FromMilliseconds(100)); // a renewal from an earlier epoch: it stays
        Assert.Equal((LeaseResultKind.Granted, 2L), (lower.Kind, lower.Epoch));

        var granted = await WitnessFixture.UntilAsync(
            () => b.AcquireAsync("node-b", 1, s_long),
            r => r.Kind != LeaseResultKind.Denied,
            "node-a's 100 ms lease runs out",
            each: r => Assert.True(r.Kind is LeaseResultKind.Denied or LeaseResultKind.Granted, r.ToString()));
        Assert.Equal((LeaseResultKind.Granted, 3L), (granted.Kind, granted.Epoch));
    }

    [Fact]
    public async Task Release_by_the_holder_makes_the_lease_available_at_once()
    {
        await using var f = await WitnessFixture.StartAsync(); // default 100 ms safety margin: release must skip it
        var a = f.Client();
        var b = f.Client();
        Assert.True((await a.AcquireAsync("node-a", 0, s_long)).IsGranted);

        Assert.Equal(LeaseResultKind.Released, (await b.ReleaseAsync("node-b")).Kind); // not the holder: no change
        Assert.Equal(LeaseResultKind.Denied, (await b.AcquireAsync("node-b", 1, s_long)).Kind);
        Assert.Equal(LeaseResultKind.Released, (await a.ReleaseAsync("node-a")).Kind);
        var granted = await b.AcquireAsync("node-b", 1, s_long);

        Assert.Equal((LeaseResultKind.Granted, 2L), (granted.Kind, granted.Epoch));
        Assert.Equal("node-b", f.Server.Holder);
    }

    [Fact]
    public async Task A_ttl_above_MaxTtl_is_granted_as_MaxTtl()
    {
        await using var f = await WitnessFixture.StartAsync(o => o with { MaxTtl = TimeSpan.FromSeconds(1) });

        var r = await f.Client().AcquireAsync("node-a", 0, TimeSpan.FromSeconds(30));

        Assert.Equal((LeaseResultKind.Granted, TimeSpan.FromSeconds(1)), (r.Kind, r.Ttl));
    }

    [Fact]
    public async Task Nodes_racing_for_a_free_lease_get_exactly_one_grant()
    {
        await using var f = await WitnessFixture.StartAsync();
        var clients = Enumerable.Range(0, 16).Select(_ => f.Client()).ToArray();

        var results = await Eventually.Completes(Task.WhenAll(clients.Select((c, i) => c.AcquireAsync($"node-{i}", 0, s_long))));

        var granted = Assert.Single(results, r => r.IsGranted);
        Assert.Equal(1, granted.Epoch);
        Assert.All(results.Where(r => !r.IsGranted), r => Assert.Equal((LeaseResultKind.Denied, f.Server.Holder, 1L), (r.Kind, r.Holder, r.Epoch)));
    }

    [Fact]
    public async Task The_client_checks_its_arguments()
    {
        await using var f = await WitnessFixture.StartAsync();
        var c = f.Client();

        await Assert.ThrowsAsync<ArgumentException>(() => c.AcquireAsync("bad id", 0, s_long));
        await Assert.ThrowsAsync<ArgumentException>(() => c.AcquireAsync(new string('x', 65), 0, s_long));
        await Assert.ThrowsAsync<ArgumentOutOfRangeException>(() => c.AcquireAsync("node-a", -1, s_long));
        await Assert.ThrowsAsync<ArgumentOutOfRangeException>(() => c.AcquireAsync("node-a", 0, TimeSpan.FromMilliseconds(49)));
        await Assert.ThrowsAsync<ArgumentOutOfRangeException>(() => c.AcquireAsync("node-a", 0, TimeSpan.FromSeconds(61)));
        Assert.Throws<ArgumentException>(() => new WitnessClient("no-port"));
        Assert.Null(f.Server.Holder);
    }
}
