using FastBroker.Replication;

namespace FastBroker.ReplicationTests;

/// <summary>
/// STANDBY reports, over real TCP: a holder that records its standby behind (it is about to confirm publishes the
/// standby lacks) keeps the lease from every other node, even once the lease is released or has run out, until it
/// reports the standby in sync again or an ACQUIRE is forced. The record is on disk before the answer.
/// </summary>
public class WitnessStandbyBehindTests
{
    private static readonly TimeSpan s_long = TimeSpan.FromSeconds(10); // outlives any stall of a loaded machine

    [Fact]
    public async Task A_holder_that_reported_its_standby_behind_keeps_the_lease_from_others_until_it_reports_it_in_sync()
    {
        await using var f = await WitnessFixture.StartAsync();
        var a = f.Client();
        var b = f.Client();
        Assert.Equal(1, (await a.AcquireAsync("node-a", 0, s_long)).Epoch);

        var recorded = await a.SetStandbyAsync("node-a", 1, behind: true);

        Assert.Equal((LeaseResultKind.StandbyRecorded, true), (recorded.Kind, recorded.StandbyBehind));
        Assert.True(f.Server.StandbyBehind);
        Assert.Equal("fastbroker-witness 1\nholder node-a\nepoch 1\nstandby behind\n", await File.ReadAllTextAsync(f.StatePath));
        Assert.True((await a.StatusAsync()).StandbyBehind);
        Assert.True((await a.AcquireAsync("node-a", 1, s_long)) is { Kind: LeaseResultKind.Granted, Epoch: 1, StandbyBehind: true });

        // Released (as a primary that stops does): without the report b would be granted at once.
        Assert.Equal(LeaseResultKind.Released, (await a.ReleaseAsync("node-a")).Kind);
        var denied = await b.AcquireAsync("node-b", 1, s_long);
        Assert.True(denied is { Kind: LeaseResultKind.Denied, Holder: "node-a", Epoch: 1, StandbyBehind: true }, denied.ToString());
        Assert.Equal(TimeSpan.Zero, denied.Remaining);
        Assert.Contains(f.Log, l => l.Contains("denied node-b", StringComparison.Ordinal) && l.Contains("reported its standby behind", StringComparison.Ordinal));

        // The holder comes back, its standby catches up: in sync, and the next release hands the lease over.
        Assert.True((await a.AcquireAsync("node-a", 1, s_long)) is { Kind: LeaseResultKind.Granted, Epoch: 1 });
        Assert.True((await a.SetStandbyAsync("node-a", 1, behind: false)) is { Kind: LeaseResultKind.StandbyRecorded, StandbyBehind: false });
        Assert.Equal("fastbroker-witness 1\nholder node-a\nepoch 1\nstandby in-sync\n", await File.ReadAllTextAsync(f.StatePath));
        Assert.Equal(LeaseResultKind.Released, (await a.ReleaseAsync("node-a")).Kind);
        Assert.True((await b.AcquireAsync("node-b", 1, s_long)) is { Kind: LeaseResultKind.Granted, Epoch: 2, StandbyBehind: false });
    }

    [Fact]
    public async Task A_forced_acquire_passes_a_standby_reported_behind_but_never_a_running_lease()
    {
        await using var f = await WitnessFixture.StartAsync();
        var a = f.Client();
        var b = f.Client();
        Assert.True((await a.AcquireAsync("node-a", 0, s_long)).IsGranted);
        Assert.True((await a.SetStandbyAsync("node-a", 1, behind: true)).StandbyBehind);

        var whileRunning = await b.AcquireAsync("node-b", 1, s_long, force: true);
        Assert.True(whileRunning is { Kind: LeaseResultKind.Denied, Holder: "node-a" }, whileRunning.ToString());
        Assert.True(whileRunning.Remaining > TimeSpan.Zero, whileRunning.ToString());

        Assert.Equal(LeaseResultKind.Released, (await a.ReleaseAsync("node-a")).Kind);
        Assert.Equal(LeaseResultKind.Denied, (await b.AcquireAsync("node-b", 1, s_long)).Kind);
        var forced = await b.AcquireAsync("node-b", 1, s_long, force: true);

        Assert.True(forced is { Kind: LeaseResultKind.Granted, Epoch: 2, StandbyBehind: false }, forced.ToString());
        Assert.False(f.Server.StandbyBehind); // nothing is confirmed in the new epoch yet
        Assert.Contains(f.Log, l => l.Contains("granted node-b epoch 2", StringComparison.Ordinal) && l.Contains("forced", StringComparison.Ordinal));
        Assert.Equal("fastbroker-witness 1\nholder node-b\nepoch 2\nstandby in-sync\n", await File.ReadAllTextAsync(f.StatePath));
    }

    [Fact]
    public async Task Only_the_holder_at_its_epoch_reports_its_standby()
    {
        await using var f = await WitnessFixture.StartAsync();
        var a = f.Client();
        Assert.Equal(LeaseResultKind.Error, (await a.SetStandbyAsync("node-a", 0, behind: true)).Kind); // nobody holds it
        Assert.True((await a.AcquireAsync("node-a", 0, s_long)).IsGranted);

        var other = await f.Client().SetStandbyAsync("node-b", 1, behind: true);
        var staleEpoch = await a.SetStandbyAsync("node-a", 5, behind: true);

        Assert.True(other is { Kind: LeaseResultKind.Denied, Holder: "node-a", Epoch: 1 }, other.ToString());
        Assert.True(staleEpoch is { Kind: LeaseResultKind.Denied, Holder: "node-a", Epoch: 1 }, staleEpoch.ToString());
        Assert.False(f.Server.StandbyBehind);
    }

    [Fact]
    public async Task The_report_survives_a_restart_and_a_state_file_without_it_reads_as_in_sync()
    {
        await using var f = await WitnessFixture.StartAsync();
        var a = f.Client();
        Assert.True((await a.AcquireAsync("node-a", 0, s_long)).IsGranted);
        Assert.True((await a.SetStandbyAsync("node-a", 1, behind: true)).StandbyBehind);

        await f.RestartAsync();
        Assert.True(f.Server.StandbyBehind);
        Assert.True((await f.Client().StatusAsync()) is { Holder: "node-a", Epoch: 1, StandbyBehind: true });

        await f.Server.StopAsync();
        await File.WriteAllTextAsync(f.StatePath, "fastbroker-witness 1\nholder node-a\nepoch 1\n"); // written before the report existed
        await f.RestartAsync();
        Assert.False(f.Server.StandbyBehind);
        Assert.Equal(("node-a", 1L), (f.Server.Holder, f.Server.Epoch));
    }

    [Fact]
    public async Task A_lease_keeper_takes_the_report_from_its_grant_and_records_changes()
    {
        await using var f = await WitnessFixture.StartAsync();
        var client = f.Client();
        await using (var first = await LeaseKeeper.TryStartAsync(client, "node-a", 0, s_long))
        {
            Assert.NotNull(first);
            Assert.False(first.StandbyBehind);
            Assert.True(await first.SetStandbyBehindAsync(behind: true));
            Assert.True(first.StandbyBehind);
        }

        // A restarted primary learns from its grant that its standby is still behind.
        await using var again = await LeaseKeeper.TryStartAsync(client, "node-a", 1, s_long);
        Assert.NotNull(again);
        Assert.True(again.StandbyBehind);
        Assert.True(await again.SetStandbyBehindAsync(behind: false));
        Assert.False(again.StandbyBehind);
        Assert.False(f.Server.StandbyBehind);
    }
}
