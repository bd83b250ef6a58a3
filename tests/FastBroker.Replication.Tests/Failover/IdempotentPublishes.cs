using System.Buffers;
using System.Collections.Concurrent;
using System.Text;
using FastBroker.Replication;

namespace FastBroker.ReplicationTests.Failover;

/// <summary>
/// The steps the idempotent-producer failover tests share: a producer's publishes straight into a node's broker (no
/// client, so a test chooses each sequence, epoch and token), their answers, and the failover from a to b.
/// </summary>
internal static class IdempotentPublishes
{
    /// <summary>A producer whose records <see cref="Busy"/>'s push out of the rescan of each topic's newest records.</summary>
    internal const ulong Early = 0x0E0E_0E0E_0E0E_0E07;

    /// <summary>Publishes after <see cref="Early"/>.</summary>
    internal const ulong Busy = 0x0B0B_0B0B_0B0B_0B08;

    /// <summary>
    /// Publishes <paramref name="producer"/>'s <paramref name="sequence"/> to <paramref name="topic"/> (payload: the id
    /// and the sequence), answered to <paramref name="sink"/> under <paramref name="token"/> (the sequence unless told).
    /// </summary>
    internal static void Publish(Broker broker, IPublishConfirmSink sink, string topic, ulong producer, ulong sequence, ulong epoch = 0, ulong? token = null, PublishDurability durability = PublishDurability.TopicDefault)
    {
        PublishClaim claim;
        while (!broker.TryBeginPublish(1, out claim))
        {
            // 20,000 publishes outrun the 16,384-entry input ring when a loaded machine slows the journaler: wait for room.
            Assert.True(broker.WaitForPublishRoomAsync(1).AsTask().Wait(TimeSpan.FromSeconds(30)), "room in the input ring within 30 s");
        }

        var parameters = new PublishParameters(Durability: durability, ProducerId: producer, ProducerSequence: sequence, ProducerEpoch: epoch);
        claim.Add(Encoding.UTF8.GetBytes(topic), default, default, new ReadOnlySequence<byte>(Encoding.UTF8.GetBytes($"{producer:x}-{sequence}")), parameters, sink, token ?? sequence);
        claim.Commit();
    }

    /// <summary>Publishes <paramref name="producer"/>'s sequences <paramref name="from"/> up to <paramref name="to"/> (not included), each token its sequence.</summary>
    internal static void PublishRun(Broker broker, IPublishConfirmSink sink, string topic, ulong producer, ulong from, ulong to)
    {
        for (var i = from; i < to; i++)
        {
            Publish(broker, sink, topic, producer, i);
        }
    }

    /// <summary><see cref="Early"/>'s sequences 0 to 9, then <see cref="Busy"/>'s 0 to <paramref name="busy"/> - 1, each token its sequence.</summary>
    internal static void PublishEarlyThenBusy(Broker broker, IPublishConfirmSink sink, string topic, ulong busy)
    {
        PublishRun(broker, sink, topic, Early, 0, 10);
        PublishRun(broker, sink, topic, Busy, 0, busy);
    }

    /// <summary>Stops <paramref name="a"/> and promotes <paramref name="b"/>, which must then be the primary.</summary>
    internal static async Task FailOverAsync(ReplicatedNode a, ReplicatedNode b)
    {
        await a.DisposeAsync();
        await b.PromoteAsync();
        Assert.Equal(NodeRole.Primary, b.Role);
    }

    /// <summary>Records each publish's answer: its token, the offset (-1 for a failure), whether a duplicate, the error.</summary>
    internal sealed class Sink : IPublishConfirmSink
    {
        public ConcurrentQueue<(ulong Token, long Offset, bool Duplicate, BrokerErrorCode Error)> Outcomes { get; } = new();

        public int Count => Outcomes.Count;

        public void OnPublishConfirmed(ulong token, long offset, bool duplicate) => Outcomes.Enqueue((token, offset, duplicate, BrokerErrorCode.None));

        public void OnPublishFailed(ulong token, BrokerErrorCode code, string reason) => Outcomes.Enqueue((token, -1, false, code));
    }
}
