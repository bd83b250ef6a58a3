using System.Runtime.CompilerServices;
using FastBroker.Client;
using FastBroker.Protocol;
using static FastBroker.ClientTests.Wire;

namespace FastBroker.ClientTests;

/// <summary>
/// A subscription's resume after a reconnect that the server refuses: for good (a durable subscription whose position
/// file is damaged: StorageError) it ends with the server's code and reason while the client's other subscriptions go
/// on; for now (the server's broker is closing: Closed) the client keeps it and resumes it on a later connection.
/// </summary>
public class ResumeRefusalTests
{
    private static readonly SubscribeOptions s_durable = SubscribeOptions.Default with { Start = SubscribeStart.Committed(Protocol.StartKind.Earliest) };

    /// <summary>
    /// The broker restarts with the durable subscription's position file damaged (a wrong magic), so its resume is
    /// refused with StorageError naming the file. Retrying cannot mend the file: the subscription ends with the code and
    /// the reason (its reader throws them, after what it had buffered), and the client's healthy subscription resumes
    /// and keeps receiving.
    /// </summary>
    [Fact]
    public async Task A_resume_refused_with_StorageError_ends_that_subscription_naming_the_file_and_the_others_go_on()
    {
        await using var f = await ServerFixture.StartAsync();
        var client = await f.ConnectAsync();
        for (var i = 0; i < 4; i++)
        {
            await Within(client.PublishAsync("resume.bad", Bytes($"b{i}")));
            await Within(client.PublishAsync("resume.good", Bytes($"g{i}")));
        }

        await using var bad = await Within(client.CreateSubscriptionAsync("resume.bad", s_durable with { DurableName = "bad", Credit = 2 }));
        await using var good = await Within(client.CreateSubscriptionAsync("resume.good", s_durable with { DurableName = "good", Credit = 2 }));
        Assert.Equal(["b0", "b1"], (await TakeAsync(bad, 2)).Select(m => m.GetPayloadString()));
        await Within(bad.CommitAsync());
        Assert.Equal(["g0", "g1"], (await TakeAsync(good, 2)).Select(m => m.GetPayloadString()));
        await Within(good.CommitAsync());

        var path = Path.Combine(f.DataDirectory, "subscriptions", "bad.pos");
        await f.RestartBrokerAsync(beforeOpen: () =>
        {
            var bytes = File.ReadAllBytes(path);
            "NOTAPOSN"u8.CopyTo(bytes);
            File.WriteAllBytes(path, bytes);
        });

        // The damaged one ends, after what it had buffered, with the server's code and reason.
        using var cts = new CancellationTokenSource(Deadline);
        var seen = new List<string>();
        var error = await Assert.ThrowsAsync<BrokerClientException>(async () =>
        {
            await foreach (var m in bad.ReadAllAsync(cts.Token))
            {
                seen.Add(m.GetPayloadString());
            }
        });
        Assert.Equal(ErrorCode.StorageError, error.ErrorCode);
        Assert.True(error.Reason.Contains(path, StringComparison.Ordinal), $"the error does not name the position file {path}: {error.Reason}");
        Assert.All(seen, p => Assert.Contains(p, new[] { "b2", "b3" }));
        // The event is emitted right after the subscription ends, on the client's reader: the reader above may throw first.
        await EventuallyAsync(() => f.Events.Any(e => e.Kind == BrokerClientEventKind.SubscriptionEnded && e.Code == ErrorCode.StorageError && e.SubscriptionId == bad.Id), "SubscriptionEnded with StorageError is reported");

        // The healthy one resumed after its commit and keeps receiving.
        await Within(client.PublishAsync("resume.good", Bytes("g4")));
        await Within(client.PublishAsync("resume.bad", Bytes("b4")));
        Assert.Equal(["g2", "g3", "g4"], (await TakeAsync(good, 3)).Select(m => m.GetPayloadString()));
    }

    /// <summary>
    /// A handler subscription (ConsumeAsync) whose resume is refused for good ends alike: it stops (IsActive false), its
    /// Completion fails with the server's code and reason, and SubscriptionEnded says so.
    /// </summary>
    [Fact]
    public async Task A_handler_subscription_whose_resume_is_refused_with_StorageError_ends_with_the_reason()
    {
        await using var f = await ServerFixture.StartAsync();
        var client = await f.ConnectAsync();
        await Within(client.PublishAsync("resume.handler", Bytes("h0")));
        var handler = new Counting();
        await using var consumer = await Within(client.ConsumeAsync("resume.handler", handler, s_durable with { DurableName = "handler" }));
        await EventuallyAsync(() => Volatile.Read(ref handler.Count.Value) == 1, "the handler took h0");
        await Within(consumer.CommitAsync());

        var path = Path.Combine(f.DataDirectory, "subscriptions", "handler.pos");
        await f.RestartBrokerAsync(beforeOpen: () =>
        {
            var bytes = File.ReadAllBytes(path);
            "NOTAPOSN"u8.CopyTo(bytes);
            File.WriteAllBytes(path, bytes);
        });

        var error = await Assert.ThrowsAsync<BrokerClientException>(() => consumer.Completion.WaitAsync(Deadline));
        Assert.Equal(ErrorCode.StorageError, error.ErrorCode);
        Assert.True(error.Reason.Contains(path, StringComparison.Ordinal), $"the error does not name the position file {path}: {error.Reason}");
        Assert.False(consumer.IsActive);
    }

    /// <summary>
    /// The server comes back over a broker that is closed, so it answers the durable subscription's resume with Closed
    /// (the broker is shutting down): not a reason to end it. The client keeps it, reconnects, and once the broker is
    /// open again the subscription resumes after its commit, every message once, in order.
    /// </summary>
    [Fact]
    public async Task A_resume_refused_for_now_keeps_the_subscription_and_a_later_connection_resumes_it()
    {
        await using var f = await ServerFixture.StartAsync();
        var client = await f.ConnectAsync();
        for (var i = 0; i < 4; i++)
        {
            await Within(client.PublishAsync("resume.later", Bytes($"l{i}")));
        }

        await using var sub = await Within(client.CreateSubscriptionAsync("resume.later", s_durable with { DurableName = "later", Credit = 2 }));
        Assert.Equal(["l0", "l1"], (await TakeAsync(sub, 2)).Select(m => m.GetPayloadString()));
        await Within(sub.CommitAsync());

        await f.ServeClosedBrokerAsync();
        var refusals = 0;
        await EventuallyAsync(
            () => (refusals = f.Events.Count(e => e.Kind == BrokerClientEventKind.Disconnected && e.Code == ErrorCode.Closed && e.Message.Contains("resuming subscription", StringComparison.Ordinal))) >= 2
                || f.Events.Any(e => e.Kind == BrokerClientEventKind.SubscriptionEnded),
            "the client reconnected after two refused resumes");
        Assert.True(refusals >= 2, $"the subscription ended instead of being resumed later: {string.Join("; ", f.Events.Where(e => e.Kind == BrokerClientEventKind.SubscriptionEnded))}");

        await f.RestartBrokerAsync();
        await Within(client.PublishAsync("resume.later", Bytes("l4")));
        Assert.Equal(["l2", "l3", "l4"], (await TakeAsync(sub, 3)).Select(m => m.GetPayloadString()));
        Assert.DoesNotContain(f.Events, e => e.Kind == BrokerClientEventKind.SubscriptionEnded);
    }

    /// <summary>
    /// The server fails unexpectedly handling the resume (a bug: ERROR Internal). Nothing says a retry would fare better
    /// (a bug tends to fail the same way), so the client does not retry it by itself: the subscription ends with the code
    /// and the server's reason, as for any refusal for good, and the application decides.
    /// </summary>
    [Fact]
    public async Task A_resume_refused_with_Internal_ends_that_subscription_with_the_servers_reason()
    {
        var fail = 0;
        await using var f = await ServerFixture.StartAsync(o => o with
        {
            TestHook = (point, _) =>
            {
                if (point == "durable-subscribed" && Volatile.Read(ref fail) == 1)
                {
                    throw new InvalidOperationException("the hook failed");
                }
            },
        });
        var client = await f.ConnectAsync();
        await Within(client.PublishAsync("resume.internal", Bytes("i0")));
        await using var sub = await Within(client.CreateSubscriptionAsync("resume.internal", s_durable with { DurableName = "internal" }));
        Assert.Equal(["i0"], (await TakeAsync(sub, 1)).Select(m => m.GetPayloadString()));

        Volatile.Write(ref fail, 1);
        await f.RestartServerAsync();
        using var cts = new CancellationTokenSource(Deadline);
        var error = await Assert.ThrowsAsync<BrokerClientException>(async () =>
        {
            await foreach (var m in sub.ReadAllAsync(cts.Token))
            {
            }
        });
        Assert.Equal(ErrorCode.Internal, error.ErrorCode);
        Assert.Contains("the hook failed", error.Reason, StringComparison.Ordinal);
        Assert.Contains(f.Events, e => e.Kind == BrokerClientEventKind.SubscriptionEnded && e.Code == ErrorCode.Internal && e.SubscriptionId == sub.Id);
    }

    private sealed class Counting : IClientMessageHandler
    {
        public StrongBox<int> Count { get; } = new();

        public void OnMessage(scoped in ClientMessageView message) => Interlocked.Increment(ref Count.Value);
    }
}
