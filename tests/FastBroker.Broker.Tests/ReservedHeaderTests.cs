using System.Buffers;
using System.Buffers.Binary;
using FastBroker.Engine;
using FastBroker.Journal;
using FastBroker.Testing;
using static FastBroker.BrokerTests.ClaimPublishTests;

namespace FastBroker.BrokerTests;

/// <summary>
/// The <c>fb-</c> headers the broker writes into a message itself and reads back (<c>fb-producer</c>,
/// <c>fb-expires</c>): a publisher may not supply them, and the broker reads its own entry, never a publisher's.
/// </summary>
public class ReservedHeaderTests
{
    private const ulong ProducerA = 0xA;
    private const ulong ProducerB = 0xB;

    [Fact]
    public async Task A_forged_producer_header_is_refused_so_the_forged_producers_sequence_is_stored_after_a_restart()
    {
        await using var f = await BrokerFixture.StartAsync();
        var sink = new RecordingSink();

        // Producer A's message carries its own fb-producer = (B, 7). Stored, the restart rescan would take it for B's
        // sequence 7, and B's real message 7 would be confirmed as a duplicate without being stored.
        PublishIdempotent(f.Broker, sink, ProducerA, 0, "orders", "from A", 1, [.. Entry("trace", "t"u8), .. Entry(Broker.ProducerHeader, ProducerValue(ProducerB, 7))]);
        var refused = (await sink.WaitForAsync(1))[0];
        Assert.Equal(BrokerErrorCode.InvalidArgument, refused.Error);
        Assert.Contains("fb-producer", refused.Reason, StringComparison.Ordinal);

        await f.RestartAsync();

        var after = new RecordingSink();
        PublishIdempotent(f.Broker, after, ProducerB, 7, "orders", "from B", 2);
        var stored = (await after.WaitForAsync(1))[0];
        Assert.Equal((BrokerErrorCode.None, 0L, false), (stored.Error, stored.Offset, stored.Duplicate));
        Assert.Equal(1, Head(f.Broker, "orders"));
    }

    [Fact]
    public async Task The_restart_rescan_reads_the_brokers_own_producer_header_not_a_forged_one_ahead_of_it()
    {
        // A journal written before such publishes were refused: A's record carries a publisher's fb-producer = (B, 7)
        // and, after it as the broker appends it, the broker's own fb-producer = (A, 0).
        await using var f = await BrokerFixture.StartAsync();
        f.Broker.CreateTopic("orders");
        await f.RestartAsync(whileClosed: () =>
        {
            var journalOptions = TopicRegistry.JournalOptionsFor(BrokerFixture.Options(f.DataDirectory).DefaultTopicOptions);
            using var journal = JournalLog.Open(Path.Combine(f.DataDirectory, "topics", "orders", TopicRegistry.JournalDirectory), journalOptions);
            byte[] headers = [.. Entry(Broker.ProducerHeader, ProducerValue(ProducerB, 7)), .. Entry(Broker.ProducerHeader, ProducerValue(ProducerA, 0))];
            Assert.True(journal.TryAppend(default, headers, "from A"u8, (RecordFlags)Broker.HasProducerFlag, out var offset));
            Assert.Equal(0, offset);
            journal.Commit();
        });

        var sink = new RecordingSink();
        PublishIdempotent(f.Broker, sink, ProducerB, 7, "orders", "from B", 1);
        PublishIdempotent(f.Broker, sink, ProducerA, 0, "orders", "from A", 2);
        var outcomes = await sink.WaitForAsync(2);
        Assert.Equal((BrokerErrorCode.None, 1L, false), (outcomes[0].Error, outcomes[0].Offset, outcomes[0].Duplicate));
        Assert.Equal((BrokerErrorCode.None, 0L, true), (outcomes[1].Error, outcomes[1].Offset, outcomes[1].Duplicate));
        Assert.Equal(2, Head(f.Broker, "orders"));
    }

    [Fact]
    public async Task Every_publish_call_refuses_the_brokers_own_names_and_passes_the_reserved_names_publishers_set()
    {
        await using var f = await BrokerFixture.StartAsync();
        var sink = new RecordingSink();
        foreach (var name in new[] { Broker.ProducerHeader, Broker.ExpiresHeader })
        {
            var headers = new MessageHeaders().Add("trace", "t").Add(name, new byte[16]);
            var e = await Assert.ThrowsAsync<BrokerException>(async () => await f.Broker.PublishAsync("orders", "x"u8.ToArray(), headers: headers));
            Assert.Equal(BrokerErrorCode.InvalidArgument, e.Code);
            Assert.Contains(name, e.Message, StringComparison.Ordinal);
            e = Assert.Throws<BrokerException>(() => f.Broker.TryPublish("orders", "x"u8, headers: headers));
            Assert.Equal(BrokerErrorCode.InvalidArgument, e.Code);
        }

        // Through the claim (the server's path) the refusal takes its slot; the message after it is stored.
        Assert.True(f.Broker.TryBeginPublish(2, out var claim));
        claim.Add("orders"u8, default, new ReadOnlySequence<byte>(Entry(Broker.ExpiresHeader, new byte[8])), new ReadOnlySequence<byte>("x"u8.ToArray()), default, sink, 1);
        claim.Add("orders"u8, default, default, new ReadOnlySequence<byte>("y"u8.ToArray()), default, sink, 2);
        claim.Commit();
        var outcomes = await sink.WaitForAsync(2);
        Assert.Equal((BrokerErrorCode.InvalidArgument, BrokerErrorCode.None), (outcomes[0].Error, outcomes[1].Error));
        Assert.Contains("fb-expires", outcomes[0].Reason, StringComparison.Ordinal);

        // Priorities, request-reply and a dead letter's history are the publisher's to set.
        var allowed = new MessageHeaders().Add("fb-priority", "1").Add("fb-reply-to", "_inbox.x").Add("fb-correlation-id", 5L)
            .Add("fb-dlq-topic", "jobs").Add("fb-dlq-offset", 3L).Add("fb-dlq-error", "e");
        Assert.Equal(1, await f.Broker.PublishAsync("orders", "z"u8.ToArray(), headers: allowed));
        Assert.Equal(2, Head(f.Broker, "orders"));
    }

    [Fact]
    public async Task A_dead_lettered_idempotent_message_reaches_the_dlq_without_the_brokers_headers_and_can_be_published_again()
    {
        await using var f = await BrokerFixture.StartAsync();
        var sink = new RecordingSink();
        PublishIdempotent(f.Broker, sink, ProducerA, 0, "jobs", "poison", 1, Entry("trace", "t"u8));
        Assert.Equal(BrokerErrorCode.None, (await sink.WaitForAsync(1))[0].Error);
        using var member = f.Broker.JoinGroup("jobs", "workers");
        var got = Consume.FetchOne(member, "the job is delivered");
        Assert.Equal(WorkQueueOutcome.DeadLettered, member.Nack(got.Offset, got.DeliveryCount, requeue: false, error: "unparseable"));
        await Eventually.TrueAsync(() => f.Broker.GetSnapshot().Topics.Any(t => t.Name == "jobs.dlq" && t.Head == 1), "the dead letter is stored");

        using var dlq = f.Broker.Subscribe("jobs.dlq", new SubscriptionOptions { Start = StartPosition.Earliest });
        Message? dead = null;
        await foreach (var m in dlq.ReadAllAsync(new CancellationTokenSource(Eventually.DefaultTimeout).Token))
        {
            dead = m;
            break;
        }

        Assert.NotNull(dead);
        Assert.Null(dead.Header(Broker.ProducerHeader));
        Assert.Equal(("t", "unparseable"), (dead.HeaderText("trace"), dead.HeaderText("fb-dlq-error")));

        // A retry from the dead-letter topic publishes its headers, history included, as they are.
        var again = new MessageHeaders();
        foreach (var (name, value) in dead.Headers)
        {
            again.Add(name, value);
        }

        Assert.Equal(1, await f.Broker.PublishAsync("jobs", dead.Payload, headers: again));
    }

    /// <summary>One encoded header entry.</summary>
    private static byte[] Entry(string name, ReadOnlySpan<byte> value) => new MessageHeaders().Add(name, value).Encoded.ToArray();

    private static byte[] ProducerValue(ulong producer, ulong sequence)
    {
        var value = new byte[16];
        BinaryPrimitives.WriteUInt64LittleEndian(value, producer);
        BinaryPrimitives.WriteUInt64LittleEndian(value.AsSpan(8), sequence);
        return value;
    }
}
