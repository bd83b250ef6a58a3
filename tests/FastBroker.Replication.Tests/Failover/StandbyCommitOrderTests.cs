using FastBroker.Testing;

namespace FastBroker.ReplicationTests.Failover;

/// <summary>
/// Two threads committing the same durable subscription at once: the standby's copy of the position ends at the one
/// the primary's file holds. The first commit is held between its store and its replication update (through the
/// tests-only <see cref="Subscription.CommitStored"/>) until the second has either completed (its store and its update
/// both made in between) or is blocked waiting for the first. Two in-process nodes, no witness, a 30 s heartbeat (no
/// whole file sent meanwhile to mend the copy); the topic acknowledges as standby-received, so each commit's answer
/// waits for the standby to apply it.
/// </summary>
[Collection(nameof(FailoverCollection))]
public sealed class StandbyCommitOrderTests
{
    private const string Feed = "commitorder.feed";
    private const string Keeper = "subscriptions/keeper.pos";

    private static readonly TimeSpan s_interval = TimeSpan.FromSeconds(30);
    private static readonly TimeSpan s_deadline = TimeSpan.FromSeconds(30);

    [Fact]
    public async Task Concurrent_commits_of_one_subscription_leave_the_standby_at_the_position_the_primary_holds()
    {
        using var dir = new TempDirectory();
        var brokerOptions = BrokerOptions.Default with { DefaultTopicOptions = TopicOptions.Default with { Acks = AckMode.StandbyReceived } };
        var (a, b) = await InProcessPair.StartAsync(dir, brokerOptions, o => o with { HeartbeatInterval = s_interval, HeartbeatTimeout = s_interval * 2 });
        await using (a)
        await using (b)
        {
            var broker = a.Broker!;
            await PositionCopies.PublishAsync(broker, Feed, 10);

            using var keeper = broker.Subscribe(Feed, SubscriptionOptions.Default with { DurableName = "keeper", Start = StartPosition.Committed });
            await keeper.CommitAsync(Feed, 2);
            Assert.Equal(2, PositionCopies.PositionIn(dir.Combine("b"), Keeper, Feed));

            using var firstStored = new ManualResetEventSlim();
            var secondCalling = 0;
            var heldUntil = "";
            Thread? second = null;
            var secondDone = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            keeper.CommitStored = (_, next) =>
            {
                if (next != 5)
                {
                    return;
                }

                firstStored.Set();
                string? held = null;
                Eventually.TryWait(
                    () => (held = secondDone.Task.IsCompleted ? "the second commit completed"
                        : Volatile.Read(ref secondCalling) == 1 && (second!.ThreadState & ThreadState.WaitSleepJoin) != 0 ? "the second commit waited for the first"
                        : null) is not null,
                    s_deadline);
                heldUntil = held ?? "neither within the deadline";
            };

            second = new Thread(() =>
            {
                try
                {
                    firstStored.Wait(s_deadline);
                    Volatile.Write(ref secondCalling, 1);
                    keeper.CommitAsync(Feed, 8).AsTask().GetAwaiter().GetResult();
                    secondDone.SetResult();
                }
                catch (Exception e)
                {
                    secondDone.SetException(e);
                }
            })
            { IsBackground = true, Name = "second commit" };
            second.Start();
            await Task.Run(async () => await keeper.CommitAsync(Feed, 5));
            await secondDone.Task.WaitAsync(s_deadline);

            var primary = keeper.CommittedOffset(Feed);
            var standby = PositionCopies.PositionIn(dir.Combine("b"), Keeper, Feed);
            Assert.True(
                standby == primary,
                $"b's copy of keeper's position in {Feed} is {standby}, a's is {primary} (commits 5 and 8 at once, the first held until {heldUntil}): the update queued last carried the older commit");
        }
    }

}
