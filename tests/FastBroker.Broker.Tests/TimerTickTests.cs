using FastBroker.Engine;
using FastBroker.Testing;

namespace FastBroker.BrokerTests;

public class TimerTickTests
{
    /// <summary>
    /// The broker's timer fires on pool threads every few milliseconds while a group is open. A tick held up in a group
    /// (its <c>Pump</c> waiting on the group's lock, a state file's rewrite on a slow disk; here a test hook that waits)
    /// did not stop the next ones: each started anyway and waited behind it on another pool thread, so the pool ran out of
    /// threads for every async path in the process. A callback that finds the previous tick running now returns at once
    /// and is counted, and the ticks go on once the held one ends.
    /// </summary>
    [Fact]
    public async Task A_held_timer_tick_keeps_the_next_ones_from_starting_and_they_resume_when_it_ends()
    {
        await using var f = await BrokerFixture.StartAsync();
        var b = f.Broker;
        var member = b.JoinGroup("timer-held", "g", GroupOptions.Default with { Prefetch = 1 }); // the timer ticks every TimerResolution
        using var held = new HeldCalls();
        b.TimerTaskHook = name =>
        {
            if (name == "g")
            {
                held.Hold();
            }
        };

        try
        {
            await Eventually.TrueAsync(() => held.Entered >= 1, "a tick reaches the group and is held");
            var callbacks = b.TimerCallbacks;
            var skipped = b.TimerTicksSkipped;

            // Either the timer fires again and again and those callbacks skip, or a second tick runs into the group.
            await Eventually.TrueAsync(() => b.TimerTicksSkipped - skipped >= 5 || held.MaxInFlight > 1, "five more timer callbacks while the tick is held");
            Assert.True(held.MaxInFlight == 1, $"{held.MaxInFlight} timer ticks in the group at once while one was held ({b.TimerCallbacks - callbacks} callbacks since it was held, {b.TimerTicksSkipped - skipped} skipped): each started anyway and tied up another pool thread");
            Assert.Equal(1, held.Entered);
            Assert.True(b.TimerCallbacks - callbacks >= 5, $"{b.TimerCallbacks - callbacks} callbacks");

            held.Release();
            var before = held.Entered;
            await Eventually.TrueAsync(() => held.Entered >= before + 3, "the ticks go on once the held one ends");
            Assert.Equal(1, held.MaxInFlight);
        }
        finally
        {
            b.TimerTaskHook = null;
            held.Release();
            member.Dispose();
        }
    }

    /// <summary>
    /// One group's held tick (here a test hook that waits) held the whole tick: every later callback skipped it, so the
    /// other groups' ticks (their visibility timeouts), the durable subscriptions' position-file checks and the
    /// <c>producers.epochs</c> refresh waited for it too. Each is now a task of its own that skips only its own
    /// overlapping run: with one group held, the other group ticks, a removed position file is written again, and the
    /// refresh leaves out an id past the epoch retention (the broker's producer clock is the test's).
    /// </summary>
    [Fact]
    public async Task A_held_group_tick_holds_neither_the_other_groups_nor_the_position_checks_nor_the_epochs_refresh()
    {
        const ulong producer = 0x0E90_C4D0_0000_0077;
        var clock = new ManualClock();
        await using var f = await BrokerFixture.StartAsync(o => o with { StampClock = clock, ProducerIdleTimeout = TimeSpan.FromSeconds(1), ProducerExpiry = TimeSpan.FromSeconds(2), ProducerEpochRetention = TimeSpan.FromSeconds(4) });
        var b = f.Broker;
        b.StateFileCheckInterval = TimeSpan.FromMilliseconds(20);
        var epochs = Path.Combine(f.DataDirectory, ProducerEpochFile.FileName);
        var positionPath = Path.Combine(f.DataDirectory, "subscriptions", "d.pos");
        var (_, old) = b.InitProducer(producer);
        clock.Advance(TimeSpan.FromMilliseconds(1));
        var (_, current) = b.InitProducer(producer); // replaces it and never writes
        Assert.True(current > old, $"epoch {current} after {old}");

        using var release = new ManualResetEventSlim(false);
        int heldEntered = 0, otherTicks = 0;
        b.TimerTaskHook = name =>
        {
            if (name == "gb")
            {
                Interlocked.Increment(ref otherTicks);
            }
            else if (name == "ga")
            {
                Interlocked.Increment(ref heldEntered);
                release.Wait(Eventually.DefaultTimeout); // held until the test lets it go
            }
        };

        using var held = b.JoinGroup("timer-held-one", "ga", GroupOptions.Default with { Prefetch = 1 }); // the timer ticks every TimerResolution
        using var other = b.JoinGroup("timer-held-one", "gb", GroupOptions.Default with { Prefetch = 1 });
        using var durable = b.Subscribe("timer-held-one", SubscriptionOptions.Default with { DurableName = "d", Start = StartPosition.Earliest });
        try
        {
            await Eventually.TrueAsync(() => Volatile.Read(ref heldEntered) >= 1, "a tick reaches group ga and is held");
            var before = Volatile.Read(ref otherTicks);
            File.Delete(positionPath);
            clock.Advance(TimeSpan.FromSeconds(5)); // past the retention after the id's last use: the next refresh leaves it out

            var done = Eventually.TryWait(
                () => Volatile.Read(ref otherTicks) >= before + 3 && File.Exists(positionPath) && !ProducerCheckpointFile.Names(epochs, producer),
                TimeSpan.FromSeconds(30));
            Assert.True(
                done,
                $"30 s while ga's tick was held: gb ticked {Volatile.Read(ref otherTicks) - before} times (3 wanted), d.pos {(File.Exists(positionPath) ? "was" : "was not")} written again, producers.epochs {(ProducerCheckpointFile.Names(epochs, producer) ? "still names" : "left out")} {producer:x16} ({b.TimerCallbacks} callbacks, {b.TimerTicksSkipped} skipped)");
            Assert.Equal(1, Volatile.Read(ref heldEntered)); // the held group's tick never overlapped itself
            Assert.True(b.TimerTicksSkipped > 0, "no callback skipped the held group");
        }
        finally
        {
            release.Set();
            b.TimerTaskHook = null;
        }
    }
}
