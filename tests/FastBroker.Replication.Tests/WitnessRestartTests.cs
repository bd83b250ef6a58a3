using System.Diagnostics;
using FastBroker.Replication;

namespace FastBroker.ReplicationTests;

/// <summary>What a witness remembers across a restart, and how it protects a holder it cannot see any more.</summary>
public class WitnessRestartTests
{
    [Fact]
    public async Task Holder_and_epoch_survive_a_restart_and_others_are_denied_until_MaxTtl_has_passed()
    {
        var maxTtl = TimeSpan.FromSeconds(1);
        await using var f = await WitnessFixture.StartAsync(o => o with { MaxTtl = maxTtl, SafetyMargin = TimeSpan.FromMilliseconds(20) });
        Assert.Equal(1, (await f.Client().AcquireAsync("node-a", 0, TimeSpan.FromMilliseconds(200))).Epoch);

        var beforeRestart = Stopwatch.GetTimestamp();
        await f.RestartAsync();

        Assert.Equal(("node-a", 1L), (f.Server.Holder, f.Server.Epoch));
        var b = f.Client();
        var denials = 0;
        var granted = await WitnessFixture.UntilAsync(
            () => b.AcquireAsync("node-b", 1, TimeSpan.FromSeconds(10)),
            r => r.Kind != LeaseResultKind.Denied,
            "MaxTtl after the restart passes",
            each: r =>
            {
                // The restarted witness started its MaxTtl after beforeRestart: an answer received sooner than MaxTtl
                // after it must be a denial, whatever the scheduler did in between. No timing is assumed.
                var received = Stopwatch.GetElapsedTime(beforeRestart);
                if (r.Kind == LeaseResultKind.Denied)
                {
                    denials++;
                    Assert.Equal(("node-a", 1L), (r.Holder, r.Epoch));
                    Assert.InRange(r.Remaining, TimeSpan.FromMilliseconds(1), maxTtl + f.Options.SafetyMargin);
                }
                else
                {
                    Assert.True(received >= maxTtl, $"granted {received.TotalMilliseconds:0} ms after the restart began, before MaxTtl");
                }
            });

        Assert.Equal((LeaseResultKind.Granted, 2L), (granted.Kind, granted.Epoch));
        Assert.True(denials > 0 || Stopwatch.GetElapsedTime(beforeRestart) >= maxTtl);

        await f.RestartAsync();
        Assert.Equal(("node-b", 2L), (f.Server.Holder, f.Server.Epoch));
    }

    [Fact]
    public async Task The_holder_renews_at_its_epoch_right_after_a_restart()
    {
        await using var f = await WitnessFixture.StartAsync();
        Assert.Equal(1, (await f.Client().AcquireAsync("node-a", 0, TimeSpan.FromSeconds(1))).Epoch);

        await f.RestartAsync();
        var renewed = await f.Client().AcquireAsync("node-a", 1, TimeSpan.FromSeconds(1));

        Assert.Equal((LeaseResultKind.Granted, 1L), (renewed.Kind, renewed.Epoch));
    }

    [Fact]
    public async Task The_client_reconnects_after_the_witness_restarts_on_the_same_port()
    {
        await using var f = await WitnessFixture.StartAsync();
        var a = f.Client();
        Assert.True((await a.AcquireAsync("node-a", 0, TimeSpan.FromSeconds(1))).IsGranted);

        await f.RestartAsync(samePort: true);
        var status = await a.StatusAsync(); // the kept connection is dead: one retry on a fresh one

        Assert.Equal((LeaseResultKind.Status, "node-a", 1L), (status.Kind, status.Holder, status.Epoch));
    }

    [Fact]
    public async Task A_stopped_witness_answers_Unreachable_instead_of_throwing()
    {
        await using var f = await WitnessFixture.StartAsync();
        var a = f.Client(TimeSpan.FromSeconds(5));
        Assert.True((await a.AcquireAsync("node-a", 0, TimeSpan.FromSeconds(1))).IsGranted);

        await f.Server.StopAsync();
        var kept = await a.AcquireAsync("node-a", 1, TimeSpan.FromSeconds(1));
        var fresh = await f.Client(TimeSpan.FromSeconds(5)).StatusAsync();

        Assert.Equal(LeaseResultKind.Unreachable, kept.Kind);
        Assert.Equal(LeaseResultKind.Unreachable, fresh.Kind);
        Assert.False(string.IsNullOrEmpty(kept.Message));
    }

    [Fact]
    public async Task A_corrupt_state_file_stops_the_witness_from_starting()
    {
        await using var f = await WitnessFixture.StartAsync();
        await f.Server.StopAsync();
        await File.WriteAllTextAsync(f.StatePath, "fastbroker-witness 1\nholder node-a\nepo");

        await Assert.ThrowsAsync<InvalidDataException>(() => WitnessServer.StartAsync(f.Options));
    }

    [Fact]
    public async Task Two_witnesses_cannot_share_a_data_directory()
    {
        await using var f = await WitnessFixture.StartAsync();

        await Assert.ThrowsAsync<IOException>(() => WitnessServer.StartAsync(f.Options));
    }
}
