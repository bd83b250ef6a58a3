using FastBroker.Client;
using Xunit.Abstractions;

namespace FastBroker.ReplicationTests.Failover;

/// <summary>
/// Invariant 6 across real processes: a primary frozen (SIGSTOP) past its witness lease, while the standby is promoted,
/// must confirm nothing once it thaws, publish or commit (invariant 5: a commit answered there is missing on the new
/// primary). Its clients' publishes and commits sent while it was frozen wait in its socket buffers and
/// reach it the moment it runs again, before the lease keeper's timer has told it that its lease ran out.
/// </summary>
[Collection(nameof(PairProcessCollection))]
public sealed class ThawedPrimaryWriteTests(ITestOutputHelper output)
{
    private const string Topic = "thawed.orders";
    private const int Queued = 2000;

    /// <summary>
    /// The thaw is a race between the node's I/O and its lease keeper's expiry timer, which it lost in about one run in
    /// two before the fix (2000 of 2000, 769 of 2000 confirmed): up to three freezes, the pair's roles swapping each
    /// time, so that a node that confirms is caught in all but about one run in eight.
    /// </summary>
    private const int Rounds = 3;

    [Theory]
    [InlineData("local")]
    [InlineData("standby-received")]
    public async Task A_thawed_primary_whose_lease_ran_out_confirms_no_publish_sent_while_it_was_frozen(string acks)
    {
        await using var pair = new PairHarness();
        NodeProcess? frozen = null;
        try
        {
            // 2 s heartbeat timeout (4 s lease): a loaded machine does not fence the primary before the freeze.
            var (a, b, before) = await pair.StartWitnessedPairAsync("--acks", acks, "--heartbeat-timeout-ms", "2000", "--degrade-to-local");
            var (primary, standby) = (a, b);
            long expected = 0;
            for (var round = 1; round <= Rounds; round++)
            {
                // Connected to the primary only, without heartbeats: the connection stays open through the freeze, and
                // the publishes made meanwhile wait in the primary's socket buffer.
                await using var client = await BrokerClient.ConnectAsync(BrokerClientOptions.Default with
                {
                    Endpoints = [primary.ClientEndpoint],
                    ReconnectTimeout = TimeSpan.FromSeconds(5),
                });
                Assert.Equal(expected++, await client.PublishAsync(Topic, "before"u8));
                await primary.WaitForAsync(s => s.StandbyCaughtUp(Topic), $"round {round}: {standby.Id} holds the topic");

                // A consumer of the primary that has read the newest message and commits it while the primary is frozen.
                await using var consumer = await BrokerClient.ConnectAsync(BrokerClientOptions.Default with
                {
                    Endpoints = [primary.ClientEndpoint],
                    ReconnectTimeout = TimeSpan.FromSeconds(5),
                });
                var subscription = await consumer.CreateSubscriptionAsync(Topic, SubscribeOptions.Default with { DurableName = $"audit{round}", Start = SubscribeStart.Earliest });
                using var reading = new CancellationTokenSource(TimeSpan.FromSeconds(30));
                ClientMessage newest;
                do
                {
                    newest = await subscription.ReadAsync(reading.Token);
                }
                while (newest.Offset < expected - 1);

                primary.Freeze();
                frozen = primary;
                var promoted = await standby.WaitForAsync(s => s.IsPrimary && s.Epoch > before.Epoch, $"round {round}: {standby.Id} takes over from the frozen {primary.Id}", TimeSpan.FromSeconds(60));
                var publishes = new List<Task<long>>();
                for (var i = 0; i < Queued; i++)
                {
                    publishes.Add(client.PublishAsync(Topic, BitConverter.GetBytes(i)).AsTask());
                }

                var commit = subscription.CommitAsync(newest).AsTask();
                primary.Freeze(false);
                frozen = null;
                await primary.WaitForAsync(s => s.IsStandby && s.Epoch == promoted.Epoch && s.ReplicaOf(Topic) is { } copy && copy.Next == expected, $"round {round}: the thawed {primary.Id} steps down, follows {standby.Id} and holds its copy", TimeSpan.FromSeconds(60));
                await Task.WhenAny(Task.WhenAll([.. publishes, commit]), Task.Delay(TimeSpan.FromSeconds(30)));
                output.WriteLine($"{acks}, round {round}: the commit of offset {newest.Offset} sent to the frozen {primary.Id}: {(commit.IsCompletedSuccessfully ? "answered OK" : commit.Exception?.InnerException?.Message ?? "no answer")}");
                Assert.False(commit.IsCompletedSuccessfully, $"{acks}, round {round}: the deposed {primary.Id} answered a commit after {standby.Id} was primary at epoch {promoted.Epoch}");
                var confirmed = publishes.Where(p => p.IsCompletedSuccessfully).Select(p => p.Result).ToList();
                output.WriteLine($"{acks}, round {round}: {confirmed.Count} of {Queued} publishes sent to the frozen {primary.Id} confirmed after the thaw; {publishes.Count(p => p.IsFaulted)} failed, first: {publishes.FirstOrDefault(p => p.IsFaulted)?.Exception?.InnerException?.Message}");
                Assert.True(confirmed.Count == 0, $"{acks}, round {round}: the deposed {primary.Id} confirmed {confirmed.Count} publishes (offsets {string.Join(", ", confirmed.Take(10))}…) after {standby.Id} was primary at epoch {promoted.Epoch}");
                before = promoted;
                (primary, standby) = (standby, primary);
            }
        }
        catch
        {
            output.WriteLine(pair.Logs);
            throw;
        }
        finally
        {
            frozen?.Freeze(false);
        }
    }
}
