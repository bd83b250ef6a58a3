using FastBroker.Engine;
using FastBroker.Protocol;
using FastBroker.Server;
using FastBroker.Testing;

namespace FastBroker.ServerTests;

/// <summary>
/// INIT_PRODUCER on the server of a deposed primary of a pair (its gate's authority gone: the witness lease ran out, or
/// a newer primary exists, before the node stepped down): answered ERROR NotPrimary, with an epoch or without, the
/// connection open, as a COMMIT is refused there. Answered OK, a new epoch would be one the new primary never sees.
/// </summary>
public sealed class DeposedInitProducerTests
{
    [Fact]
    public async Task A_deposed_primary_answers_INIT_PRODUCER_with_NotPrimary_and_keeps_the_connection()
    {
        const ProtocolFeatures Features = RawConnection.AllFeatures | ProtocolFeatures.InitProducer | ProtocolFeatures.ProducerEpoch;
        using var dir = new TempDirectory("fastbroker-deposed-server");
        var gate = new ReplicationGate(TimeSpan.FromMinutes(10), degradeToLocal: false) { Authority = static () => false };
        await using var broker = Broker.Open(BrokerOptions.Default with { DataDirectory = dir.Path, DefaultTopicOptions = TopicOptions.Default with { SegmentBytes = 4L << 20 } }, gate);
        await using var server = await BrokerServer.StartAsync(broker, ServerOptions.Default with { Port = 0, HeartbeatInterval = TimeSpan.FromMinutes(1), HandshakeTimeout = TimeSpan.FromMinutes(1) });
        await using var c = await RawConnection.OpenAsync(server.EndPoint, Features);

        await c.SendAsync(w => FrameWriter.WriteInitProducer(w, 1, 77, 0)); // a new instance
        await c.SendAsync(w => FrameWriter.WriteInitProducer(w, 2, 77)); // without an epoch: where its sequence stands
        var answers = await c.ReadUntilAsync(x => x.RequestId == 2);
        foreach (var id in new ulong[] { 1, 2 })
        {
            var answer = Assert.Single(answers, x => x.RequestId == id);
            Assert.True((answer.Type, answer.ErrorCode, answer.CloseConnection) == (FrameType.Error, ErrorCode.NotPrimary, false), $"INIT_PRODUCER #{id}: {answer}");
            Assert.Contains("no longer the primary", answer.ErrorReason, StringComparison.Ordinal);
        }

        await c.SendAsync(w => FrameWriter.WritePing(w, 3));
        Assert.Contains(await c.ReadUntilAsync(x => x.RequestId == 3), x => x.Type == FrameType.Pong);
    }
}
