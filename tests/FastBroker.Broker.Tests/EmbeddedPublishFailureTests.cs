using System.Buffers;
using System.Collections;
using System.Text;

namespace FastBroker.BrokerTests;

/// <summary>
/// An embedded publish (<see cref="Broker.TryPublish"/>, <see cref="Broker.TryPublishBatch"/>,
/// <see cref="Broker.PublishAsync"/>, <see cref="Broker.PublishBatchAsync"/>, a dead letter) that fails after it reserved
/// its input-ring slots still publishes every one of them, as entries the pipeline skips: the ring's consumers wait on
/// each reserved sequence in turn, so a slot left unpublished would stall every publisher of the broker. The caller gets
/// the exception as it is, and nothing of the failed claim is stored. The failures are real ones a caller can cause (a
/// list whose indexer throws, as a <see cref="List{T}"/> another thread shrinks does; a payload whose memory throws when
/// read) or, for the copy of a span, the one thing that can throw there: the slot's buffer failing to grow
/// (<see cref="Engine.TopicState.SlotGrowthFault"/>, as an <see cref="OutOfMemoryException"/>). An input ring of 8
/// slots makes <see cref="Broker.PublishBatchAsync"/> publish in claims of 2 (<see cref="Broker.MaxPublishClaim"/>).
/// </summary>
public class EmbeddedPublishFailureTests
{
    private static readonly TimeSpan s_deadline = TimeSpan.FromSeconds(20);

    [Fact]
    public async Task A_batch_whose_list_throws_mid_claim_stores_the_claims_before_it_and_the_broker_keeps_confirming()
    {
        await using var f = await BrokerFixture.StartWithRingOf8Async();
        Assert.Equal(2, f.Broker.MaxPublishClaim);

        // Items 0-1 are the first claim (stored, confirmed); item 3 throws while the second claim (2-3) is filled.
        var thrown = await Record(() => f.Broker.PublishBatchAsync("a", new ThrowingList(count: 5, throwAt: 3)).AsTask());

        Assert.True(thrown is InvalidOperationException { Message: "test: item 3" }, $"the caller gets the list's exception as it is, got: {thrown}");
        await AssertBrokerGoesOnAsync(f, "a", expectedNext: 2); // items 0-1 stored, nothing of 2-3 (item 2 was copied)
    }

    [Fact]
    public async Task A_batch_whose_list_throws_in_its_first_claim_stores_nothing()
    {
        await using var f = await BrokerFixture.StartWithRingOf8Async();
        var thrown = await Record(() => f.Broker.PublishBatchAsync("a", new ThrowingList(count: 2, throwAt: 1)).AsTask());

        Assert.True(thrown is InvalidOperationException { Message: "test: item 1" }, $"got: {thrown}");
        await AssertBrokerGoesOnAsync(f, "a", expectedNext: 0);
    }

    [Fact]
    public async Task An_all_or_none_batch_whose_payload_throws_stores_none_of_it()
    {
        await using var f = await BrokerFixture.StartWithRingOf8Async();
        var payloads = new ReadOnlyMemory<byte>[] { "one"u8.ToArray(), new ThrowingMemory(3).Memory }; // MaxPublishClaim: 2

        var thrown = await Record(() => Task.FromResult(f.Broker.TryPublishBatch("a", payloads)));

        Assert.True(thrown is InvalidOperationException { Message: ThrowingMemory.Message }, $"got: {thrown}");
        await AssertBrokerGoesOnAsync(f, "a", expectedNext: 0); // "one" was copied, not stored
    }

    [Fact]
    public async Task A_publish_whose_payload_throws_fails_and_the_broker_keeps_confirming()
    {
        await using var f = await BrokerFixture.StartWithRingOf8Async();
        var thrown = await Record(() => f.Broker.PublishAsync("a", new ThrowingMemory(3).Memory).AsTask());

        Assert.True(thrown is InvalidOperationException { Message: ThrowingMemory.Message }, $"got: {thrown}");
        await AssertBrokerGoesOnAsync(f, "a", expectedNext: 0);
    }

    [Fact]
    public async Task A_publish_that_waited_for_room_and_whose_payload_throws_fails_and_the_broker_keeps_confirming()
    {
        await using var f = await BrokerFixture.StartWithRingOf8Async();
        await WaitForEmptyRingAsync(f.Broker);

        // Every slot of the ring held by unpublished claims: the publish waits for room, then gets a slot as they commit.
        var publish = HoldRingFullWhile(f.Broker, () => f.Broker.PublishAsync("a", new ThrowingMemory(3).Memory).AsTask());
        var thrown = await Record(() => publish);

        Assert.True(thrown is InvalidOperationException { Message: ThrowingMemory.Message }, $"got: {thrown}");
        await AssertBrokerGoesOnAsync(f, "a", expectedNext: 0);
    }

    [Fact]
    public async Task A_fire_and_forget_publish_whose_slot_cannot_grow_fails_and_the_broker_keeps_confirming()
    {
        await using var f = await BrokerFixture.StartWithRingOf8Async();
        f.Broker.Topics.GetForUse("a").SlotGrowthFault = static () => throw new OutOfMemoryException("test: no memory for the slot");

        var thrown = await Record(() => Task.FromResult(f.Broker.TryPublish("a", new byte[2000])));

        Assert.True(thrown is OutOfMemoryException { Message: "test: no memory for the slot" }, $"got: {thrown}");
        await AssertBrokerGoesOnAsync(f, "a", expectedNext: 0);
    }

    [Fact]
    public async Task A_dead_letter_whose_slot_cannot_grow_fails_and_the_broker_keeps_confirming()
    {
        await using var f = await BrokerFixture.StartWithRingOf8Async();
        f.Broker.Topics.GetForUse("a").SlotGrowthFault = static () => throw new OutOfMemoryException("test: no memory for the slot");

        var thrown = await Record(() => f.Broker.PublishDeadLetterAsync("a", new byte[2000], default, new MessageHeaders(), default).AsTask());

        Assert.True(thrown is OutOfMemoryException, $"got: {thrown}");
        await AssertBrokerGoesOnAsync(f, "a", expectedNext: 0);
    }

    /// <summary>(b) another topic's publish is confirmed; (c) the failed topic's next offset tells what of it was stored.</summary>
    private static async Task AssertBrokerGoesOnAsync(BrokerFixture f, string topic, long expectedNext)
    {
        var other = f.Broker.PublishAsync("other", "after"u8.ToArray()).AsTask();
        Assert.True(await Completes(other), $"a PublishAsync to another topic after the failed publish was not confirmed within {s_deadline.TotalSeconds} s: the input ring waits on a slot that was reserved and never published");
        Assert.Equal(0, await other);

        var next = f.Broker.PublishAsync(topic, "next"u8.ToArray()).AsTask();
        Assert.True(await Completes(next), $"a PublishAsync to '{topic}' after the failed publish was not confirmed within {s_deadline.TotalSeconds} s");
        Assert.Equal(expectedNext, await next);
        Assert.True(f.Broker.TryPublish("other", "fire"u8));
        Assert.True(await Completes(f.Broker.PublishAsync("other", "last"u8.ToArray()).AsTask()), "a later publish");
    }

    private static async Task<Exception?> Record(Func<Task> action)
    {
        try
        {
            var task = action();
            Assert.True(await Completes(task), $"the failed publish itself did not complete within {s_deadline.TotalSeconds} s");
            await task;
            return null;
        }
        catch (Exception e)
        {
            return e;
        }
    }

    private static async Task<bool> Completes(Task task) => await Task.WhenAny(task, Task.Delay(s_deadline)) == task;

    /// <summary>Waits until the pipeline has consumed every slot, so no slot frees up behind <see cref="HoldRingFullWhile"/>'s back.</summary>
    private static async Task WaitForEmptyRingAsync(Broker broker)
    {
        var until = DateTime.UtcNow + s_deadline;
        while (!broker.Ring.HasAvailableCapacity(broker.Ring.BufferSize))
        {
            Assert.True(DateTime.UtcNow < until, $"the input ring did not drain within {s_deadline.TotalSeconds} s");
            await Task.Delay(1);
        }
    }

    /// <summary>
    /// Claims every free slot of the input ring (one claim per level of recursion: a claim cannot be kept in a list),
    /// starts <paramref name="publish"/> while none is left, then commits the claims (each slot a refusal nobody hears of).
    /// </summary>
    private static Task HoldRingFullWhile(Broker broker, Func<Task> publish, int depth = 0)
    {
        Assert.True(depth <= broker.Ring.BufferSize, "claimed more slots than the ring has");
        if (!broker.TryBeginPublish(1, out var claim))
        {
            var started = publish();
            Assert.False(started.IsCompleted, "the publish should wait for room while every slot is claimed");
            return started;
        }

        try
        {
            return HoldRingFullWhile(broker, publish, depth + 1);
        }
        finally
        {
            claim.AddFailed(BrokerErrorCode.InvalidArgument, "test: a slot held", null, 0);
            claim.Commit();
        }
    }

    /// <summary>A list whose indexer throws at one item, as a list another thread shrinks does; its enumerator yields every item.</summary>
    private sealed class ThrowingList(int count, int throwAt) : IReadOnlyList<ReadOnlyMemory<byte>>
    {
        public int Count => count;

        public ReadOnlyMemory<byte> this[int index] => index == throwAt ? throw new InvalidOperationException($"test: item {index}") : Payload(index);

        public IEnumerator<ReadOnlyMemory<byte>> GetEnumerator()
        {
            for (var i = 0; i < count; i++)
            {
                yield return Payload(i);
            }
        }

        IEnumerator IEnumerable.GetEnumerator() => GetEnumerator();

        private static byte[] Payload(int index) => Encoding.UTF8.GetBytes($"item {index}");
    }

    /// <summary>Memory of a known length whose bytes cannot be read: <see cref="GetSpan"/> throws (a disposed pool buffer, say).</summary>
    private sealed class ThrowingMemory(int length) : MemoryManager<byte>
    {
        public const string Message = "test: the payload's memory is gone";

        public override Memory<byte> Memory => CreateMemory(length);

        public override Span<byte> GetSpan() => throw new InvalidOperationException(Message);

        public override MemoryHandle Pin(int elementIndex = 0) => throw new NotSupportedException();

        public override void Unpin()
        {
        }

        protected override void Dispose(bool disposing)
        {
        }
    }
}
