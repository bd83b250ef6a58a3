using System.Text;
using FastBroker.Client;
using FastBroker.Testing;

namespace FastBroker.ClientTests;

/// <summary>Small helpers shared by the tests: UTF-8 payloads and bounded reads.</summary>
internal static class Wire
{
    /// <summary>Generous: tests run on a loaded 2-core machine; a deadline only catches hangs.</summary>
    public static readonly TimeSpan Deadline = TimeSpan.FromSeconds(60);

    public static byte[] Bytes(string text) => Encoding.UTF8.GetBytes(text);

    public static string Text(ReadOnlyMemory<byte> bytes) => Encoding.UTF8.GetString(bytes.Span);

    /// <summary>Reads exactly <paramref name="count"/> messages, failing on the deadline.</summary>
    public static async Task<List<ClientMessage>> TakeAsync(ClientSubscription subscription, int count, TimeSpan? deadline = null)
    {
        using var cts = new CancellationTokenSource(deadline ?? Deadline);
        var list = new List<ClientMessage>(count);
        while (list.Count < count)
        {
            list.Add(await subscription.ReadAsync(cts.Token));
        }

        return list;
    }

    /// <summary>Reads exactly <paramref name="count"/> deliveries, failing on the deadline.</summary>
    public static async Task<List<ClientMessage>> TakeAsync(GroupMember member, int count, TimeSpan? deadline = null)
    {
        using var cts = new CancellationTokenSource(deadline ?? Deadline);
        var list = new List<ClientMessage>(count);
        while (list.Count < count)
        {
            list.Add(await member.ReadAsync(cts.Token));
        }

        return list;
    }

    /// <summary>
    /// Polls <paramref name="condition"/> until it holds, failing on the deadline. Asynchronous on purpose: a test
    /// blocking a thread-pool thread in a wait (on 2 cores, with tests in parallel) starves the client's own I/O and
    /// heartbeat continuations.
    /// </summary>
    public static Task EventuallyAsync(Func<bool> condition, string because, TimeSpan? deadline = null) =>
        Eventually.TrueAsync(condition, because, deadline ?? Deadline);

    /// <summary>Awaits a task with the deadline.</summary>
    public static async Task<T> Within<T>(ValueTask<T> task) => await task.AsTask().WaitAsync(Deadline);

    /// <summary>Awaits a task with the deadline.</summary>
    public static async Task Within(ValueTask task) => await task.AsTask().WaitAsync(Deadline);

    /// <summary>The head of <paramref name="topic"/> on the fixture's broker, -1 if it does not exist.</summary>
    public static long Head(ServerFixture f, string topic)
        => f.Broker.GetSnapshot().Topics.SingleOrDefault(t => t.Name == topic)?.Head ?? -1;

    /// <summary>Every message the topic holds (its head, read once the publishers are done), payload and offset.</summary>
    public static async Task<List<(string Payload, long Offset)>> ReadTopicAsync(BrokerClient client, ServerFixture f, string topic)
    {
        var head = (int)Head(f, topic);
        await using var sub = await client.CreateSubscriptionAsync(topic, SubscribeOptions.Default with { Start = SubscribeStart.Earliest });
        var messages = await TakeAsync(sub, head);
        Assert.Equal(head, Head(f, topic));
        return [.. messages.Select(m => (m.GetPayloadString(), m.Offset))];
    }
}
