using FastBroker.Testing;

namespace FastBroker.BrokerTests;

/// <summary>
/// Waking the publishers that wait for room costs the journaler (the single writer) the same whatever their number: it
/// has the wake-up round completed on the thread pool instead of queuing every waiter's continuation itself, which also
/// allocated an invoker per cancellable waiter on its thread after every batch while the ring was full. Measured with
/// an inline subscription, whose handler runs on the journaler thread: its allocation counter read at each message
/// from the last one before the wake to the first one after it.
/// </summary>
public class RoomWakeThreadTests
{
    private const int Waiters = 128;
    private static readonly TimeSpan s_deadline = TimeSpan.FromSeconds(30);

    [Fact]
    public async Task Waking_many_cancellable_waiters_allocates_nothing_on_the_journaler_thread()
    {
        await using var f = await BrokerFixture.StartWithRingOf8Async();
        var meter = new JournalerAllocations();
        using var sub = f.Broker.SubscribeInline(">", meter);
        using var cancel = new CancellationTokenSource(); // a cancellable wait, as a server session's

        // The first round warms up what a wake touches once (the thread pool's queues, the code paths); the second is measured.
        await WakeRoundAsync(f.Broker, cancel.Token, meter, "warm");
        var (before, after) = await WakeRoundAsync(f.Broker, cancel.Token, meter, "measured");

        Assert.Null(sub.Fault);
        Assert.True(
            after - before < 1024,
            $"the journaler thread allocated {after - before} B between the batch that freed the ring and the next message, while waking {Waiters} publishers waiting for room");
    }

    /// <summary>
    /// Holds the ring full, lets <see cref="Waiters"/> callers of WaitForPublishRoomAsync fall asleep, releases the ring,
    /// waits for all of them, then publishes a probe; returns the journaler's allocation counter at the held message
    /// (read before its batch ends, so before the wake) and at the probe.
    /// </summary>
    private static async Task<(long Before, long After)> WakeRoundAsync(Broker broker, CancellationToken token, JournalerAllocations meter, string round)
    {
        meter.Reset();
        using var held = await RoomWaitTests.HeldRingAsync(broker);
        var sleepsBefore = broker.RoomSleeps;
        var waiting = Enumerable.Range(0, Waiters).Select(_ => broker.WaitForPublishRoomAsync(1, token).AsTask()).ToArray();
        await Eventually.TrueAsync(() => broker.RoomSleeps - sleepsBefore >= Waiters, $"{round}: the {Waiters} callers wait for room", s_deadline);

        held.Release();
        Assert.Null(held.Error);
        await Task.WhenAll(waiting).WaitAsync(s_deadline);
        Assert.Equal(0, broker.RoomWaiters);

        Assert.True(broker.TryPublish("other", "probe"u8), "the ring has room once the waiters are awake");
        await Eventually.TrueAsync(() => meter.Probe >= 0, $"{round}: the probe is delivered inline", s_deadline);
        Assert.True(meter.Held >= 0, $"{round}: the held message was delivered inline");
        return (meter.Held, meter.Probe);
    }

    /// <summary>Reads, on the journaler thread, the thread's allocation counter at the messages "held" and "probe" (allocating nothing itself).</summary>
    private sealed class JournalerAllocations : IMessageHandler
    {
        private long _held = -1;
        private long _probe = -1;

        public long Held => Volatile.Read(ref _held);

        public long Probe => Volatile.Read(ref _probe);

        public void Reset()
        {
            Volatile.Write(ref _held, -1);
            Volatile.Write(ref _probe, -1);
        }

        public void OnMessage(scoped in MessageView message)
        {
            var bytes = GC.GetAllocatedBytesForCurrentThread();
            if (message.Payload.SequenceEqual("held"u8))
            {
                Volatile.Write(ref _held, bytes);
            }
            else if (message.Payload.SequenceEqual("probe"u8))
            {
                Volatile.Write(ref _probe, bytes);
            }
        }
    }
}
