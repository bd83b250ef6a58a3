using System.Buffers;
using FastBroker.Testing;

namespace FastBroker.BrokerTests;

/// <summary>
/// <see cref="Broker.TryPublishBatch"/> claims its whole batch at once (all or none), so it is capped as the claim API is,
/// at <see cref="Broker.MaxPublishClaim"/> (a quarter of the input ring): a claim of the whole ring held while the
/// messages are copied in leaves every other producer of the broker without room, and a batch larger than the ring could
/// never be claimed, only refused with <c>false</c> on every retry. A larger batch is refused with
/// <see cref="BrokerErrorCode.InvalidArgument"/> before anything is claimed. An input ring of 8 slots makes the cap 2.
/// </summary>
public class BatchClaimCapTests
{
    private static readonly TimeSpan s_deadline = TimeSpan.FromSeconds(30);

    [Fact]
    public async Task A_batch_over_MaxPublishClaim_is_refused_as_an_invalid_argument_and_stores_nothing()
    {
        await using var f = await BrokerFixture.StartWithRingOf8Async();
        Assert.Equal(2, f.Broker.MaxPublishClaim);

        var thrown = Record(() => f.Broker.TryPublishBatch("a", Payloads(3)));

        Assert.True(thrown is BrokerException { Code: BrokerErrorCode.InvalidArgument }, $"a batch of 3 over a cap of 2 should be refused with InvalidArgument, got: {thrown?.ToString() ?? "no exception (the batch was claimed whole)"}");
        Assert.Equal(0, await f.Broker.PublishAsync("a", "next"u8.ToArray())); // nothing of the batch stored
        Assert.True(f.Broker.TryPublishBatch("a", Payloads(2)), "a batch at the cap is taken");
    }

    [Fact]
    public async Task A_batch_larger_than_the_ring_is_refused_as_an_invalid_argument_while_another_producer_goes_on()
    {
        await using var f = await BrokerFixture.StartWithRingOf8Async();
        using var stop = new CancellationTokenSource();
        var confirmed = 0;
        var producer = Task.Run(async () =>
        {
            while (!stop.IsCancellationRequested)
            {
                await f.Broker.PublishAsync("other", "p"u8.ToArray());
                Interlocked.Increment(ref confirmed);
            }
        });

        try
        {
            await Eventually.TrueAsync(() => Volatile.Read(ref confirmed) > 0 || producer.IsCompleted, "the other producer publishes", s_deadline);

            // Before: false, as on every retry of it (9 slots never fit in 8), so a caller looping on false spins forever.
            var thrown = Record(() => f.Broker.TryPublishBatch("a", Payloads(9)));

            Assert.True(thrown is BrokerException { Code: BrokerErrorCode.InvalidArgument }, $"a batch of 9 in a ring of 8 should be refused with InvalidArgument, got: {thrown?.ToString() ?? "no exception (false: a retry can never succeed)"}");
            var before = Volatile.Read(ref confirmed);
            await Eventually.TrueAsync(() => Volatile.Read(ref confirmed) > before || producer.IsCompleted, "the other producer goes on being confirmed", s_deadline);
        }
        finally
        {
            await stop.CancelAsync();
        }

        Assert.True(await Task.WhenAny(producer, Task.Delay(s_deadline)) == producer, "the other producer stops");
        await producer; // its failure, if any
        Assert.Equal(0, await f.Broker.PublishAsync("a", "next"u8.ToArray()));
    }

    [Fact]
    public async Task While_a_batch_of_the_whole_ring_is_copied_in_another_producer_still_gets_room()
    {
        await using var f = await BrokerFixture.StartWithRingOf8Async();
        await WaitForEmptyRingAsync(f.Broker);
        using var gate = new GatedMemory(1);
        var batch = Payloads(f.Broker.Ring.BufferSize - 1).Append(gate.Memory).ToArray();

        // The batch's last payload blocks when read, so a claim of the whole ring would be held here until released.
        var batching = Task.Factory.StartNew(() => Record(() => f.Broker.TryPublishBatch("a", batch)), CancellationToken.None, TaskCreationOptions.LongRunning, TaskScheduler.Default);
        await Eventually.TrueAsync(() => gate.Entered || batching.IsCompleted, "the batch is copied in or refused", s_deadline);
        var otherGotRoom = f.Broker.TryPublish("other", "p"u8);
        gate.Release();
        Assert.True(await Task.WhenAny(batching, Task.Delay(s_deadline)) == batching, "the batch call returns");

        Assert.True(otherGotRoom, "another producer got no room while one TryPublishBatch held every slot of the input ring (8 of 8) copying its messages in");
        Assert.True(await batching is BrokerException { Code: BrokerErrorCode.InvalidArgument }, $"got: {await batching}");
    }

    [Fact]
    public async Task While_a_batch_at_the_cap_is_copied_in_another_producer_still_gets_room_and_the_batch_is_stored_whole()
    {
        await using var f = await BrokerFixture.StartWithRingOf8Async();
        await WaitForEmptyRingAsync(f.Broker);
        using var gate = new GatedMemory(1);
        var batch = Payloads(f.Broker.MaxPublishClaim - 1).Append(gate.Memory).ToArray();

        var batching = Task.Factory.StartNew(() => f.Broker.TryPublishBatch("a", batch), CancellationToken.None, TaskCreationOptions.LongRunning, TaskScheduler.Default);
        await Eventually.TrueAsync(() => gate.Entered || batching.IsCompleted, "the batch is copied in", s_deadline);
        Assert.True(gate.Entered, $"the batch returned before reading its last payload: {batching.Exception}");
        var otherGotRoom = f.Broker.TryPublish("other", "p"u8);
        gate.Release();
        Assert.True(await Task.WhenAny(batching, Task.Delay(s_deadline)) == batching, "the batch call returns");

        Assert.True(otherGotRoom, "another producer got no room while a batch of MaxPublishClaim was copied in");
        Assert.True(await batching, "the batch at the cap is claimed whole");
        Assert.Equal(2, await f.Broker.PublishAsync("a", "next"u8.ToArray()));
        Assert.Equal(1, await f.Broker.PublishAsync("other", "next"u8.ToArray()));
    }

    [Fact]
    public async Task A_batch_at_the_cap_allocates_nothing_on_the_publishing_thread()
    {
        await using var f = await BrokerFixture.StartWithRingOf8Async();
        var batch = Payloads(f.Broker.MaxPublishClaim);
        PublishBatches(f.Broker, batch, 1_000); // warm-up: JIT tiers, the topic's first pages

        var before = GC.GetAllocatedBytesForCurrentThread();
        PublishBatches(f.Broker, batch, 20_000);
        var allocated = GC.GetAllocatedBytesForCurrentThread() - before;

        Assert.True(allocated < 1024, $"the publishing thread allocated {allocated} B for 20,000 batches of {batch.Length}");
        Assert.Equal(21_000 * batch.Length, await f.Broker.PublishAsync("a", "next"u8.ToArray()));
    }

    /// <summary>Publishes <paramref name="batches"/> batches, retrying each while the ring is full (bounded by the deadline).</summary>
    private static void PublishBatches(Broker broker, ReadOnlyMemory<byte>[] batch, int batches)
    {
        var until = Environment.TickCount64 + (long)s_deadline.TotalMilliseconds;
        for (var i = 0; i < batches; i++)
        {
            while (!broker.TryPublishBatch("a", batch))
            {
                if (Environment.TickCount64 > until)
                {
                    throw new TimeoutException($"batch {i}: the input ring had no room for {batch.Length} slots within {s_deadline.TotalSeconds} s");
                }

                Thread.Yield();
            }
        }
    }

    private static ReadOnlyMemory<byte>[] Payloads(int count) => Enumerable.Range(0, count).Select(i => (ReadOnlyMemory<byte>)new[] { (byte)i }).ToArray();

    private static Exception? Record(Func<bool> action)
    {
        try
        {
            action();
            return null;
        }
        catch (Exception e)
        {
            return e;
        }
    }

    /// <summary>Waits until the pipeline has consumed every slot, so the ring's whole size is free.</summary>
    private static async Task WaitForEmptyRingAsync(Broker broker) =>
        await Eventually.TrueAsync(() => broker.Ring.HasAvailableCapacity(broker.Ring.BufferSize), "the input ring drains", s_deadline);

    /// <summary>Memory whose span, when read, blocks until <see cref="Release"/> (at most the deadline): a copy in progress.</summary>
    private sealed class GatedMemory(int length) : MemoryManager<byte>
    {
        private readonly byte[] _bytes = new byte[length];
        private readonly ManualResetEventSlim _entered = new();
        private readonly ManualResetEventSlim _released = new();

        public bool Entered => _entered.IsSet;

        public override Memory<byte> Memory => CreateMemory(length);

        public void Release() => _released.Set();

        public override Span<byte> GetSpan()
        {
            _entered.Set();
            if (!_released.Wait(s_deadline))
            {
                throw new TimeoutException("test: the gate was not released");
            }

            return _bytes;
        }

        public override MemoryHandle Pin(int elementIndex = 0) => throw new NotSupportedException();

        public override void Unpin()
        {
        }

        protected override void Dispose(bool disposing)
        {
            if (disposing)
            {
                _entered.Dispose();
                _released.Dispose();
            }
        }
    }
}
