using FastBroker.Protocol;

namespace FastBroker.ServerTests;

/// <summary>
/// The top of the producer sequence space (docs/protocol.md §6): 2^64 − 1 is no sequence (the broker's window keeps
/// sequence + 1, where 0 is an empty slot), and a PUBLISH_BATCH whose sequences would pass it does not wrap to 0.
/// Found by fuzzing a real <c>fastbroker serve</c>: a retry of sequence 2^64 − 1 was stored a second time.
/// </summary>
public class ProducerSequenceLimitTests
{
    [Fact]
    public async Task Sequence_2_pow_64_minus_1_is_refused_so_a_retry_of_it_is_never_stored_twice()
    {
        await using var f = await ServerFixture.StartAsync();
        await using var c = await f.ConnectAsync();

        // 65,536 below: the same slot of the producer's window (its default size) as 2^64 − 1.
        await c.PublishAsync(1, "orders", "a", producerId: 77, producerSequence: ulong.MaxValue - 65_536);
        await c.PublishAsync(2, "orders", "b", producerId: 77, producerSequence: ulong.MaxValue);
        await c.PublishAsync(3, "orders", "b", producerId: 77, producerSequence: ulong.MaxValue); // the retry
        var confirms = await c.ReadConfirmsAsync([1, 2, 3]);

        Assert.Equal((ErrorCode.None, 0UL, false), confirms[1]);
        Assert.Equal(ErrorCode.InvalidArgument, confirms[2].Status);
        Assert.Equal(ErrorCode.InvalidArgument, confirms[3].Status);
        Assert.Equal(1, f.Broker.GetSnapshot().Topics.Single(t => t.Name == "orders").Head);

        // The producer goes on below it, and the connection stays open.
        await c.PublishAsync(4, "orders", "c", producerId: 77, producerSequence: ulong.MaxValue - 1);
        Assert.Equal((ErrorCode.None, 1UL, false), (await c.ReadConfirmsAsync([4]))[4]);
        Assert.Empty(f.Failures);
    }

    [Fact]
    public async Task A_batch_whose_sequences_would_pass_2_pow_64_minus_1_does_not_wrap_to_0()
    {
        await using var f = await ServerFixture.StartAsync();
        await using var c = await f.ConnectAsync();

        await c.SendAsync(w =>
        {
            var batch = new PublishBatchWriter(w, 4096, firstRequestId: 1, producerId: 78, firstProducerSequence: ulong.MaxValue - 1);
            Assert.True(batch.TryAdd("orders"u8, "max-1"u8));
            Assert.True(batch.TryAdd("orders"u8, "max"u8));
            Assert.True(batch.TryAdd("orders"u8, "wraps to 0"u8));
            batch.Complete();
        });
        var confirms = await c.ReadConfirmsAsync([1, 2, 3]);

        Assert.Equal((ErrorCode.None, 0UL, false), confirms[1]);
        Assert.Equal(ErrorCode.InvalidArgument, confirms[2].Status);
        Assert.Equal(ErrorCode.InvalidArgument, confirms[3].Status);

        // A new producer whose batch starts at the top: nothing stored, no message taken for sequence 0.
        await c.SendAsync(w =>
        {
            var batch = new PublishBatchWriter(w, 4096, firstRequestId: 4, producerId: 79, firstProducerSequence: ulong.MaxValue);
            Assert.True(batch.TryAdd("orders"u8, "max"u8));
            Assert.True(batch.TryAdd("orders"u8, "wraps to 0"u8));
            batch.Complete();
        });
        confirms = await c.ReadConfirmsAsync([4, 5]);
        Assert.Equal(ErrorCode.InvalidArgument, confirms[4].Status);
        Assert.Equal(ErrorCode.InvalidArgument, confirms[5].Status);
        Assert.Equal(1, f.Broker.GetSnapshot().Topics.Single(t => t.Name == "orders").Head);
        Assert.Equal(0UL, f.Broker.NextProducerSequence(79));
        Assert.Empty(f.Failures);
    }
}
