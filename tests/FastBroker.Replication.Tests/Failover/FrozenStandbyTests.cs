using FastBroker.Client;
using Xunit.Abstractions;

namespace FastBroker.ReplicationTests.Failover;

/// <summary>
/// A standby that stops dead (frozen with SIGSTOP: its kernel still acknowledges TCP, so keepalive never fires) while
/// the pair is idle. The primary must notice the silence and detach it, so that a standby-mode publish degrades to
/// local (as configured) at once instead of waiting out a long ack timeout; when the standby thaws it attaches again.
/// </summary>
[Collection(nameof(PairProcessCollection))]
public sealed class FrozenStandbyTests(ITestOutputHelper output)
{
    private const string Topic = "frozen.orders";

    [Fact]
    public async Task A_primary_detaches_a_frozen_idle_standby_and_degrades_instead_of_waiting()
    {
        await using var pair = new PairHarness();
        NodeProcess? frozen = null;
        try
        {
            // A 2 s heartbeat timeout (8 s of silence detaches): a standby stalled by a loaded machine is not taken for a frozen one.
            string[] options = ["--acks", "standby-received", "--degrade-to-local", "--ack-timeout-ms", "600000", "--heartbeat-timeout-ms", "2000"];
            var (a, b, _) = await pair.StartConfiguredPairAsync(options, options);

            await using var client = await BrokerClient.ConnectAsync(BrokerClientOptions.Default with { Endpoints = [a.ClientEndpoint] });
            Assert.Equal(0, await client.PublishAsync(Topic, "replicated"u8));
            var caughtUp = await a.WaitForAsync(s => s.StandbyCaughtUp(Topic), "b holds it");

            // Idle and healthy, b keeps answering (heartbeat answers, keepalives), so it stays attached.
            var idle = await a.WaitForAsync(
                s => s.Standby is { Attached: true } st && st.AcksReceived >= caughtUp.Standby!.AcksReceived + 30,
                "an idle standby keeps acknowledging");
            Assert.True(idle.Standby!.Attached);
            Assert.DoesNotContain($"standby 'b' disconnected", a.Logs, StringComparison.Ordinal);

            b.Freeze();
            frozen = b;
            var detached = await a.WaitForAsync(s => s.Standby is { Attached: false }, "a detaches the frozen standby (its link never closed)");
            output.WriteLine(string.Join('\n', detached.Events));

            // Detached: the publish degrades to local (the ack timeout is ten minutes; the test's deadline is far shorter).
            Assert.Equal(1, await client.PublishAsync(Topic, "while b is frozen"u8).AsTask().WaitAsync(TimeSpan.FromSeconds(60)));

            b.Freeze(false);
            frozen = null;
            await a.WaitForAsync(s => s.StandbyCaughtUp(Topic) && s.Standby!.Topics.Single(t => t.Topic == Topic).Head == 2, "the thawed b attaches again and catches up");
        }
        catch
        {
            output.WriteLine(pair.Logs);
            throw;
        }
        finally
        {
            frozen?.Freeze(false); // so that the harness can kill and reap it
        }
    }
}
