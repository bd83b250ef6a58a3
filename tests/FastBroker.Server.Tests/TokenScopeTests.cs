using System.Buffers.Binary;
using System.Text;
using FastBroker.Protocol;
using FastBroker.Server;

namespace FastBroker.ServerTests;

/// <summary>
/// Access tokens separate tenants' producer ids (docs/server.md, "Authentication and access control"): another token's
/// publishes and INIT_PRODUCERs with a producer's id (its client's, or the one the broker writes in <c>fb-producer</c>)
/// are a window of their own, so they neither make that producer's messages duplicates nor fence it.
/// </summary>
public class TokenScopeTests
{
    private const ulong ProducerA = 0x0A0A_0A0A_0A0A_0A0A;
    private const ProtocolFeatures WithEpochs = RawConnection.AllFeatures | ProtocolFeatures.InitProducer | ProtocolFeatures.ProducerEpoch;

    internal static ServerOptions TwoTenants(ServerOptions o) => o with
    {
        Tokens =
        [
            new AccessToken("token-a", PublishPatterns: ["a.>"], SubscribePatterns: ["a.>", "shared.>"]),
            new AccessToken("token-b", PublishPatterns: ["b.>"], SubscribePatterns: ["b.>", "shared.>"]),
        ],
    };

    [Fact]
    public async Task Another_tokens_publish_with_a_producers_id_and_next_sequence_does_not_make_that_producers_message_a_duplicate()
    {
        await using var f = await ServerFixture.StartAsync(TwoTenants);
        await using var a = await f.ConnectAsync(WithEpochs, token: "token-a");
        await using var b = await f.ConnectAsync(WithEpochs, token: "token-b");

        await a.PublishAsync(1, "a.orders", "first", producerId: ProducerA, producerSequence: 0);
        Assert.Equal((ErrorCode.None, 0UL, false), (await a.ReadConfirmsAsync([1]))[1]);
        var stored = await StoredProducerIdAsync(a, "a.orders");

        // B knows the client's id (a configured one) and the one every reader of a.orders sees in fb-producer.
        await b.PublishAsync(1, "b.mine", "forged", producerId: ProducerA, producerSequence: 1);
        await b.PublishAsync(2, "b.mine", "forged", producerId: stored, producerSequence: 1);
        var forged = await b.ReadConfirmsAsync([1, 2]);
        Assert.Equal(ErrorCode.None, forged[1].Status);
        Assert.Equal(ErrorCode.None, forged[2].Status);

        await a.PublishAsync(2, "a.orders", "second", producerId: ProducerA, producerSequence: 1);
        Assert.Equal((ErrorCode.None, 1UL, false), (await a.ReadConfirmsAsync([2]))[2]);

        // A's own window still deduplicates A's retries, also after a restart (rebuilt from the journal).
        await a.PublishAsync(3, "a.orders", "second", producerId: ProducerA, producerSequence: 1);
        Assert.Equal((ErrorCode.None, 1UL, true), (await a.ReadConfirmsAsync([3]))[3]);
        await f.RestartAsync(server: TwoTenants);
        await using var again = await f.ConnectAsync(WithEpochs, token: "token-a");
        await again.PublishAsync(1, "a.orders", "second", producerId: ProducerA, producerSequence: 1);
        Assert.Equal((ErrorCode.None, 1UL, true), (await again.ReadConfirmsAsync([1]))[1]);
        await again.SendAsync(w => FrameWriter.WriteInitProducer(w, 2, ProducerA));
        Assert.Equal(2UL, (await again.ReadUntilAsync(x => x.Type == FrameType.Ok))[^1].OkValue);
        Assert.Equal(2, f.Broker.GetSnapshot().Topics.Single(t => t.Name == "a.orders").Head);
    }

    [Fact]
    public async Task Another_tokens_init_producer_with_a_producers_id_does_not_fence_it()
    {
        await using var f = await ServerFixture.StartAsync(TwoTenants);
        await using var a = await f.ConnectAsync(WithEpochs, token: "token-a");
        await using var b = await f.ConnectAsync(WithEpochs, token: "token-b");

        await a.SendAsync(w => FrameWriter.WriteInitProducer(w, 1, ProducerA, 0));
        var init = (await a.ReadUntilAsync(x => x.Type is FrameType.Ok or FrameType.Error))[^1];
        Assert.True(init.Type == FrameType.Ok, init.ToString());
        await a.PublishAsync(2, "a.orders", "first", producerId: ProducerA, producerSequence: init.OkValue);
        Assert.Equal(ErrorCode.None, (await a.ReadConfirmsAsync([2]))[2].Status);
        var stored = await StoredProducerIdAsync(a, "a.orders");

        await b.SendAsync(w => FrameWriter.WriteInitProducer(w, 1, ProducerA, 0));
        await b.SendAsync(w => FrameWriter.WriteInitProducer(w, 2, stored, 0));
        var answers = await b.ReadUntilAsync(x => x.RequestId == 2 && x.Type is FrameType.Ok or FrameType.Error);
        Assert.All(answers.Where(x => x.Type is FrameType.Ok or FrameType.Error), x => Assert.True(x.Type == FrameType.Ok, x.ToString()));

        await a.PublishAsync(3, "a.orders", "second", producerId: ProducerA, producerSequence: init.OkValue + 1);
        Assert.Equal((ErrorCode.None, 1UL, false), (await a.ReadConfirmsAsync([3]))[3]);
    }

    [Fact]
    public async Task Without_tokens_the_producer_id_is_the_clients_own()
    {
        await using var f = await ServerFixture.StartAsync();
        await using var c = await f.ConnectAsync();
        await c.PublishAsync(1, "a.orders", "first", producerId: ProducerA, producerSequence: 0);
        Assert.Equal(ErrorCode.None, (await c.ReadConfirmsAsync([1]))[1].Status);
        Assert.Equal(ProducerA, await StoredProducerIdAsync(c, "a.orders"));
    }

    /// <summary>The producer id the broker wrote in the first record of <paramref name="topic"/> (its <c>fb-producer</c> header).</summary>
    internal static async Task<ulong> StoredProducerIdAsync(RawConnection c, string topic)
    {
        await c.SubscribeAsync(900, 900, topic, 1);
        var delivery = (await c.ReadDeliveriesAsync(1, []))[0];
        await c.SendAsync(w => FrameWriter.WriteUnsubscribe(w, 901, 900));
        await c.ReadUntilAsync(x => x.RequestId == 901);
        var reader = new FastBroker.Journal.RecordHeaderReader(delivery.Headers);
        while (reader.TryReadNext(out var name, out var value))
        {
            if (name.SequenceEqual("fb-producer"u8))
            {
                return BinaryPrimitives.ReadUInt64LittleEndian(value);
            }
        }

        Assert.Fail($"no fb-producer header in {topic}@{delivery.Offset}: {Encoding.UTF8.GetString(delivery.Headers)}");
        return 0;
    }
}
