using System.Buffers;
using System.Diagnostics;
using System.Text;
using FastBroker.Testing;

namespace FastBroker.BrokerTests;

/// <summary>
/// Publishers that find the input ring full (<see cref="Broker.PublishAsync"/>, <see cref="Broker.WaitForPublishRoomAsync"/>)
/// sleep until the journaler frees slots and wakes them, instead of polling: with the ring held full they do not wake at
/// all (counted by <see cref="Broker.RoomSleeps"/>, the times a waiter went to sleep; a 1 ms poll counts hundreds over
/// the hold), and they go on as soon as the slots are freed. Close and cancellation end the wait. The ring of 8 slots is
/// held full by a claim of its first slot that a thread of the test keeps uncommitted (the journaler waits on each
/// claimed sequence in turn) and 7 messages behind it.
/// </summary>
public class RoomWaitTests
{
    private static readonly TimeSpan s_deadline = TimeSpan.FromSeconds(30);

    /// <summary>How long the ring is held full: a 1 ms poll wakes each waiter about 300 times meanwhile (tens at least on a loaded machine).</summary>
    private static readonly TimeSpan s_held = TimeSpan.FromMilliseconds(300);

    [Fact]
    public async Task Publishers_waiting_for_room_sleep_until_the_pipeline_frees_slots_then_all_are_stored_in_order()
    {
        await using var f = await BrokerFixture.StartWithRingOf8Async();
        using var held = await HeldRingAsync(f.Broker);
        var waiting = Enumerable.Range(0, 3).Select(i => f.Broker.PublishAsync("a", Encoding.UTF8.GetBytes($"w{i}")).AsTask()).ToArray();
        await Eventually.TrueAsync(() => f.Broker.RoomSleeps >= waiting.Length, "the three publishers wait for room", s_deadline);

        var sleeps = await SleepsWhileHeldAsync(f.Broker, waiting);
        held.Release();
        Assert.Null(held.Error);
        var offsets = await Task.WhenAll(waiting).WaitAsync(s_deadline);

        Assert.True(sleeps <= 5, $"publishers waiting for room went to sleep {sleeps} more times while the ring was held full for {s_held.TotalMilliseconds} ms: they poll instead of being woken when the pipeline frees slots");
        Assert.Equal([8, 9, 10], offsets.Order());
        var stored = await ReadAsync(f.Broker, "a", 11);
        Assert.Equal(Enumerable.Range(0, 11).Select(i => (long)i), stored.Select(m => m.Offset)); // dense, in order
        Assert.Equal(["held", "f0", "f1", "f2", "f3", "f4", "f5", "f6"], stored.Take(8).Select(m => m.Payload));
        for (var i = 0; i < waiting.Length; i++)
        {
            Assert.Equal($"w{i}", stored[(int)offsets[i]].Payload); // each confirmed with its own message's offset
        }

        Assert.Equal(0, f.Broker.RoomWaiters);
    }

    [Fact]
    public async Task WaitForPublishRoomAsync_sleeps_until_the_pipeline_frees_the_slots_asked_for()
    {
        await using var f = await BrokerFixture.StartWithRingOf8Async();
        using var held = await HeldRingAsync(f.Broker);
        var room = f.Broker.WaitForPublishRoomAsync(f.Broker.MaxPublishClaim).AsTask();
        await Eventually.TrueAsync(() => f.Broker.RoomSleeps >= 1, "the caller waits for room", s_deadline);

        var sleeps = await SleepsWhileHeldAsync(f.Broker, [room]);
        held.Release();
        Assert.Null(held.Error);
        await room.WaitAsync(s_deadline);

        Assert.True(sleeps <= 5, $"a caller of WaitForPublishRoomAsync went to sleep {sleeps} more times while the ring was held full for {s_held.TotalMilliseconds} ms: it polls");
        Assert.True(f.Broker.TryBeginPublish(f.Broker.MaxPublishClaim, out var claim), "the room it waited for");
        claim.Dispose();
        Assert.Equal(0, f.Broker.RoomWaiters);
    }

    [Fact]
    public async Task Closing_the_broker_fails_the_publishers_waiting_for_room_with_Closed()
    {
        await using var f = await BrokerFixture.StartWithRingOf8Async();
        using var held = await HeldRingAsync(f.Broker);
        Task[] waiting =
        [
            .. Enumerable.Range(0, 3).Select(i => f.Broker.PublishAsync("a", Encoding.UTF8.GetBytes($"w{i}")).AsTask()),
            f.Broker.PublishBatchAsync("a", [new byte[1], new byte[1]]).AsTask(),
            f.Broker.WaitForPublishRoomAsync(1).AsTask(),
        ];
        await Eventually.TrueAsync(() => f.Broker.RoomSleeps >= waiting.Length, "the publishers wait for room", s_deadline);

        // DisposeAsync drains the pipeline synchronously (up to ShutdownTimeout): off the test's thread.
        var closing = Task.Run(async () => await f.Broker.DisposeAsync());
        foreach (var w in waiting)
        {
            // The ring is still held full: only the close can end these waits.
            var e = await Assert.ThrowsAsync<BrokerException>(() => w.WaitAsync(s_deadline));
            Assert.Equal(BrokerErrorCode.Closed, e.Code);
        }

        held.Release();
        await closing.WaitAsync(s_deadline);
    }

    [Fact]
    public async Task Cancelling_a_wait_for_room_ends_it_and_stores_nothing_of_it()
    {
        await using var f = await BrokerFixture.StartWithRingOf8Async();
        using var held = await HeldRingAsync(f.Broker);
        using var cancel = new CancellationTokenSource();
        Task[] waiting =
        [
            f.Broker.PublishAsync("a", "cancelled"u8.ToArray(), cancellationToken: cancel.Token).AsTask(),
            f.Broker.PublishBatchAsync("a", [new byte[1], new byte[1]], cancel.Token).AsTask(),
            f.Broker.WaitForPublishRoomAsync(1, cancel.Token).AsTask(),
        ];
        await Eventually.TrueAsync(() => f.Broker.RoomSleeps >= waiting.Length, "the publishers wait for room", s_deadline);

        await cancel.CancelAsync();
        foreach (var w in waiting)
        {
            await Assert.ThrowsAnyAsync<OperationCanceledException>(() => w.WaitAsync(s_deadline));
        }

        Assert.Equal(0, f.Broker.RoomWaiters);
        held.Release();
        Assert.Null(held.Error);
        Assert.Equal(8, await f.Broker.PublishAsync("a", "next"u8.ToArray()).AsTask().WaitAsync(s_deadline)); // nothing cancelled was stored
    }

    [Fact]
    public async Task Many_producers_contending_for_a_ring_of_8_all_get_room_and_no_wake_up_is_lost()
    {
        // Each publish that finds the ring full registers, re-checks and sleeps while the journaler frees slots batch by
        // batch: a wake-up lost between a waiter's check and its sleep would leave it asleep for good (nothing else
        // wakes it once the ring drains), and the deadline below would fail.
        await using var f = await BrokerFixture.StartWithRingOf8Async();
        const int producers = 32; // each with one publish outstanding: 32 in flight for 8 slots, so most find the ring full
        const int each = 200;
        var running = Enumerable.Range(0, producers).Select(p => Task.Run(async () =>
        {
            var topic = p % 2 == 0 ? "a" : "other";
            for (var i = 0; i < each; i++)
            {
                await f.Broker.PublishAsync(topic, Encoding.UTF8.GetBytes($"{p}:{i}"));
            }
        })).ToArray();

        await Task.WhenAll(running).WaitAsync(s_deadline);

        Assert.True(f.Broker.RoomSleeps > 0, "the ring of 8 was never full: the test did not contend for room");
        Assert.Equal(producers / 2 * each, await f.Broker.PublishAsync("a", "next"u8.ToArray()));
        Assert.Equal(producers / 2 * each, await f.Broker.PublishAsync("other", "next"u8.ToArray()));
        Assert.Equal(0, f.Broker.RoomWaiters);
    }

    /// <summary>Holds the input ring of 8 full: the first slot claimed and left uncommitted by a thread, 7 messages behind it.</summary>
    internal static async Task<HeldSlot> HeldRingAsync(Broker broker)
    {
        await Eventually.TrueAsync(() => broker.Ring.HasAvailableCapacity(broker.Ring.BufferSize), "the input ring drains", s_deadline);
        var held = new HeldSlot(broker, "a", "held");
        var filled = 0;
        while (filled < broker.Ring.BufferSize && broker.TryPublish("a", Encoding.UTF8.GetBytes($"f{filled}")))
        {
            filled++;
        }

        Assert.Equal(broker.Ring.BufferSize - 1, filled);
        return held;
    }

    /// <summary>Keeps the ring held for <see cref="s_held"/> and returns how many times waiters went to sleep meanwhile.</summary>
    private static async Task<long> SleepsWhileHeldAsync(Broker broker, Task[] waiting)
    {
        var before = broker.RoomSleeps;
        var clock = Stopwatch.StartNew();
        while (clock.Elapsed < s_held)
        {
            Assert.DoesNotContain(waiting, w => w.IsCompleted); // the ring is full: none can have gone on
            await Task.Delay(20); // the length of the hold, not a synchronisation
        }

        return broker.RoomSleeps - before;
    }

    private static async Task<List<(long Offset, string Payload)>> ReadAsync(Broker broker, string topic, int count)
    {
        using var sub = broker.Subscribe(topic, new SubscriptionOptions { Start = StartPosition.Earliest });
        var c = new Collected();
        var r = new Recorder(c);
        await Eventually.TrueAsync(
            () =>
            {
                sub.Fetch(100, ref r);
                return c.Items.Count >= count;
            },
            $"{count} messages delivered",
            s_deadline);
        return c.Items.Select(m => (m.Offset, m.Payload)).ToList();
    }
}
