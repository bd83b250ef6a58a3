using System.Text;
using FastBroker.Journal;
using FastBroker.Testing;

namespace FastBroker.BrokerTests;

/// <summary>
/// A producer whose every record retention deleted, idle but not expired: the running broker still holds its window
/// (retention never touches it), so a retry of its newest sequence is confirmed as a duplicate at the deleted offset.
/// A restart keeps that: its <c>producers.state</c> entry, whose record is below the topic's first retained offset in
/// the same creation of the topic, is trusted as the running broker trusted it. An entry of another creation of the
/// topic (deleted and created again since) is not: the retry is stored (once) in the new topic.
/// </summary>
public sealed class ProducerRetentionTests
{
    private const ulong Id = 0x7E7E_0000_0000_0001;
    private const int Filler = 5000; // ~140 B records: about 11 segments of 64 KiB

    private static readonly TopicOptions s_small = TopicOptions.Default with
    {
        SegmentBytes = 64 << 10,
        MaxMessageBytes = 16 << 10,
        RetentionBytes = 192 << 10,
    };

    [Theory]
    [InlineData(false)]
    [InlineData(true)] // with an epoch from InitProducer: the record that carried it is gone too
    public async Task A_retry_of_a_producers_record_that_retention_deleted_is_a_duplicate_also_after_a_restart(bool withEpoch)
    {
        await using var f = await BrokerFixture.StartAsync();
        f.Broker.CreateTopic("t", s_small);
        var epoch = withEpoch ? f.Broker.InitProducer(Id).Epoch : 0;
        await PublishFiveThenDeleteThemAsync(f.Broker, epoch);

        // Running: retention left the window alone.
        var running = await RetryAsync(f.Broker, 4, epoch, 1);
        Assert.Equal((4L, true, BrokerErrorCode.None), (running.Offset, running.Duplicate, running.Error));

        await f.RestartAsync();
        Assert.True(f.Broker.Topics.TryGet("t", out var t) && t.Journal!.FirstOffset > 4, "the producer's records stay deleted");
        var restarted = await RetryAsync(f.Broker, 4, epoch, 2);
        Assert.Equal((4L, true, BrokerErrorCode.None), (restarted.Offset, restarted.Duplicate, restarted.Error));
        Assert.Equal(5UL, f.Broker.NextProducerSequence(Id));
        var older = await RetryAsync(f.Broker, 2, epoch, 3); // below the entry's: cannot tell, refused (never stored twice)
        Assert.Equal(BrokerErrorCode.InvalidArgument, older.Error);
        Assert.Equal(5L + Filler, ClaimPublishTests.Head(f.Broker, "t"));

        // The open's own write of producers.state keeps the entry: a further restart still knows it.
        await f.RestartAsync();
        var again = await RetryAsync(f.Broker, 4, epoch, 4);
        Assert.Equal((4L, true, BrokerErrorCode.None), (again.Offset, again.Duplicate, again.Error));
        Assert.Equal(5L + Filler, ClaimPublishTests.Head(f.Broker, "t"));
    }

    [Fact]
    public async Task An_entry_below_the_first_offset_of_another_creation_of_the_topic_is_not_trusted()
    {
        await using var f = await BrokerFixture.StartAsync();
        f.Broker.CreateTopic("t", s_small);
        var sink = new ClaimPublishTests.RecordingSink();
        ClaimPublishTests.PublishRun(f.Broker, sink, Id, 0, 5, "old");
        await sink.WaitForAsync(5);

        // The file naming the old topic's record at offset 4, as a standby's older copy would be put beside the new topic.
        var state = Path.Combine(f.DataDirectory, "producers.state");
        byte[] old = [];
        await f.RestartAsync(whileClosed: () =>
        {
            old = File.ReadAllBytes(state);
            Directory.Delete(Path.Combine(f.DataDirectory, "topics", "t"), recursive: true);
        });
        f.Broker.CreateTopic("t", s_small);
        await FillAndDeleteAsync(f.Broker, 0);
        await f.RestartAsync(whileClosed: () => File.WriteAllBytes(state, old));

        Assert.Equal(0UL, f.Broker.NextProducerSequence(Id));
        var retry = await RetryAsync(f.Broker, 4, 0, 1);
        Assert.Equal((Filler, false, BrokerErrorCode.None), (retry.Offset, retry.Duplicate, retry.Error));
    }

    /// <summary>The producer's sequences 0 to 4 at offsets 0 to 4, then other records, until retention deleted offset 4.</summary>
    private static async Task PublishFiveThenDeleteThemAsync(Broker broker, ulong epoch)
    {
        var sink = new ClaimPublishTests.RecordingSink();
        for (var i = 0UL; i < 5; i++)
        {
            ClaimPublishTests.PublishIdempotent(broker, sink, Id, i, "t", $"p{i}", i, epoch: epoch);
        }

        Assert.Equal([0L, 1, 2, 3, 4], (await sink.WaitForAsync(5)).OrderBy(o => o.Token).Select(o => o.Offset));
        await FillAndDeleteAsync(broker, 5);
    }

    /// <summary>Publishes the filler records (offsets from <paramref name="first"/>), then applies retention until offset 4 is gone.</summary>
    private static async Task FillAndDeleteAsync(Broker broker, long first)
    {
        var publishes = Enumerable.Range(0, Filler)
            .Select(i => broker.PublishAsync("t", Encoding.UTF8.GetBytes($"m{i}").Concat(new byte[100]).ToArray()).AsTask())
            .ToList();
        Assert.Equal(Enumerable.Range(0, Filler).Select(i => first + i), await Task.WhenAll(publishes));
        Assert.True(broker.Topics.TryGet("t", out var t), "t");
        JournalLog journal = t.Journal!;
        Eventually.True(() => Directory.GetFiles(journal.Directory, "*.idx").Length >= journal.SegmentCount - 1, "closed segments get sealed");
        Eventually.True(() =>
        {
            journal.ApplyRetention();
            return journal.FirstOffset > 4;
        }, "retention deletes the segment holding offsets 0 to 4");
    }

    private static async Task<ClaimPublishTests.Outcome> RetryAsync(Broker broker, ulong sequence, ulong epoch, ulong token)
    {
        var sink = new ClaimPublishTests.RecordingSink();
        ClaimPublishTests.PublishIdempotent(broker, sink, Id, sequence, "t", $"p{sequence}", token, epoch: epoch);
        return Assert.Single(await sink.WaitForAsync(1));
    }
}
