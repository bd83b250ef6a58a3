namespace FastBroker.BrokerTests;

/// <summary>
/// A topic is deleted only while the broker is closed (its directory removed; the broker has no runtime deletion), so
/// the window the open rebuilds never holds a place in a deleted topic: the rescan reads the topics that exist, and a
/// <c>producers.state</c> entry vouches only when the record at its (topic, offset) carries its producer and sequence.
/// A retry of a sequence whose only record went with the topic is stored once in the topic created again under its
/// name (neither confirmed as a duplicate that nothing holds, nor stored twice), and a retry of it after a further
/// restart is a duplicate of that record.
/// </summary>
public sealed class ProducerDeletedTopicTests
{
    private const ulong Id = 0x0DE1_E7ED_0000_0001;

    [Fact]
    public async Task A_retry_of_a_record_whose_topic_was_deleted_and_created_again_is_stored_once()
    {
        await using var f = await BrokerFixture.StartAsync();
        var sink = new ClaimPublishTests.RecordingSink();
        ClaimPublishTests.PublishRun(f.Broker, sink, Id, 0, 5, "old");
        await sink.WaitForAsync(5);

        await f.RestartAsync(whileClosed: () => Directory.Delete(Path.Combine(f.DataDirectory, "topics", "t"), recursive: true));
        Assert.False(f.Broker.TopicExists("t"));
        Assert.Equal(0UL, f.Broker.NextProducerSequence(Id));

        var after = new ClaimPublishTests.RecordingSink();
        ClaimPublishTests.PublishIdempotent(f.Broker, after, Id, 4, "t", "old4", 1); // creates t again
        var first = Assert.Single(await after.WaitForAsync(1));
        Assert.Equal((0L, false, BrokerErrorCode.None), (first.Offset, first.Duplicate, first.Error));
        Assert.Equal(1L, ClaimPublishTests.Head(f.Broker, "t"));

        await f.RestartAsync();
        var again = new ClaimPublishTests.RecordingSink();
        ClaimPublishTests.PublishIdempotent(f.Broker, again, Id, 4, "t", "old4", 2);
        var second = Assert.Single(await again.WaitForAsync(1));
        Assert.Equal((0L, true, BrokerErrorCode.None), (second.Offset, second.Duplicate, second.Error));
        Assert.Equal(1L, ClaimPublishTests.Head(f.Broker, "t"));
    }
}
