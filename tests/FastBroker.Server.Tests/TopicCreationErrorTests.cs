using FastBroker.Protocol;

namespace FastBroker.ServerTests;

/// <summary>
/// A publish over TCP to a topic whose creation on first use fails on disk (a file where the topic's directory goes: a
/// real <c>mkdir</c> failure) is confirmed with <see cref="ErrorCode.StorageError"/> (docs/protocol.md, CONFIRM), alone
/// or inside a batch with other topics; the connection stays open, the other messages are stored, the broker keeps
/// serving (its input ring is not left with a claimed slot never published), and the same topic is created once the
/// file is gone.
/// </summary>
public class TopicCreationErrorTests
{
    [Fact]
    public async Task A_publish_to_a_topic_whose_directory_cannot_be_created_is_confirmed_StorageError_and_the_connection_and_broker_go_on()
    {
        await using var f = await ServerFixture.StartAsync();
        var blocker = Path.Combine(f.DataDirectory, "topics", "orders");
        await File.WriteAllTextAsync(blocker, "not a topic directory");
        await using var c = await f.ConnectAsync();

        await c.PublishAsync(1, "orders", "a");
        await c.PublishAsync(2, "other", "b");
        var confirms = await c.ReadConfirmsAsync([1, 2]);
        Assert.Equal(ErrorCode.StorageError, confirms[1].Status);
        Assert.Equal((ErrorCode.None, 0UL, false), confirms[2]);

        // One claim holding both: the failed topic's message is refused in its place, the other's stored.
        await c.SendAsync(w =>
        {
            var batch = new PublishBatchWriter(w, 64 * 1024, firstRequestId: 10);
            Assert.True(batch.TryAdd("other"u8, "c"u8.ToArray()));
            Assert.True(batch.TryAdd("orders"u8, "d"u8.ToArray()));
            Assert.True(batch.TryAdd("other"u8, "e"u8.ToArray()));
            batch.Complete();
        });
        var batched = await c.ReadConfirmsAsync([10, 11, 12]);
        Assert.Equal([(ErrorCode.None, 1UL, false), (ErrorCode.StorageError, 0UL, false), (ErrorCode.None, 2UL, false)], [batched[10], batched[11], batched[12]]);
        Assert.False(f.Broker.TopicExists("orders"));
        Assert.True(File.Exists(blocker)); // left as it was: not the broker's

        // The broker serves every connection still: its input ring holds no slot claimed and never published.
        await using (var other = await f.ConnectAsync())
        {
            await other.PublishAsync(1, "other", "from another connection");
            Assert.Equal((ErrorCode.None, 3UL, false), (await other.ReadConfirmsAsync([1]))[1]);
        }

        // The cause gone, the same connection creates the topic by publishing to it.
        File.Delete(blocker);
        await c.PublishAsync(20, "orders", "f");
        Assert.Equal((ErrorCode.None, 0UL, false), (await c.ReadConfirmsAsync([20]))[20]);
        Assert.Equal(4, f.Broker.GetSnapshot().Topics.Single(t => t.Name == "other").Head);
        Assert.DoesNotContain(f.Log, l => l.Contains("failed", StringComparison.Ordinal));
    }
}
