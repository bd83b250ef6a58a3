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
}
