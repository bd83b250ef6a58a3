using FastBroker.Protocol;

namespace FastBroker.ServerTests;

/// <summary>
/// A delivery that fails ends its subscription with the code the failure maps to (as a request's failure does): a
/// storage failure <see cref="ErrorCode.StorageError"/>, a server bug <see cref="ErrorCode.Internal"/> (an
/// <see cref="ArgumentException"/> included: a delivery handles no input of the client's).
/// </summary>
public class DeliveryFailureTests
{
    [Fact]
    public async Task A_delivery_that_fails_unexpectedly_ends_the_subscription_with_Internal_not_StorageError()
    {
        var reply = await SubscribeAndReadEndAsync(() => new InvalidOperationException("the delivery hook failed"));
        Assert.True(
            reply is { Type: FrameType.Error, ErrorCode: ErrorCode.Internal, SubscriptionEnded: true, ErrorSubscriptionId: 5, CloseConnection: false }
                && reply.ErrorReason.Contains("the delivery hook failed", StringComparison.Ordinal),
            $"expected ERROR Internal ending subscription 5, got: {reply}");
    }

    [Fact]
    public async Task A_delivery_that_fails_with_an_ArgumentException_ends_the_subscription_with_Internal_not_InvalidArgument()
    {
        // No input of the client's is handled in a delivery: an ArgumentException there is the server's bug.
        var reply = await SubscribeAndReadEndAsync(() => new ArgumentOutOfRangeException("count", "the delivery hook failed"));
        Assert.True(
            reply is { Type: FrameType.Error, ErrorCode: ErrorCode.Internal, SubscriptionEnded: true, ErrorSubscriptionId: 5, CloseConnection: false }
                && reply.ErrorReason.Contains("the delivery hook failed", StringComparison.Ordinal),
            $"expected ERROR Internal ending subscription 5, got: {reply}");
    }

    [Fact]
    public async Task A_delivery_that_fails_in_storage_ends_the_subscription_with_StorageError()
    {
        var reply = await SubscribeAndReadEndAsync(() => new IOException("the disk failed"));
        Assert.True(
            reply is { Type: FrameType.Error, ErrorCode: ErrorCode.StorageError, SubscriptionEnded: true, ErrorSubscriptionId: 5 },
            $"expected ERROR StorageError ending subscription 5, got: {reply}");
    }

    private static async Task<ServerFrame> SubscribeAndReadEndAsync(Func<Exception> failure)
    {
        var fail = 0;
        await using var f = await ServerFixture.StartAsync(o => o with
        {
            TestHook = (point, _) =>
            {
                if (point == "deliver" && Volatile.Read(ref fail) == 1)
                {
                    throw failure();
                }
            },
        });
        await f.Broker.PublishAsync("orders", "m0"u8.ToArray());
        await using var c = await f.ConnectAsync();
        Volatile.Write(ref fail, 1);
        await c.SubscribeAsync(1, 5, "orders", 10, Protocol.StartKind.Earliest);
        var ok = await c.ReadAsync();
        Assert.True(ok is { Type: FrameType.Ok, RequestId: 1 }, $"the SUBSCRIBE: {ok}");
        var frames = await c.ReadUntilAsync(x => x.Type == FrameType.Error);
        Assert.Contains(f.Log, l => l.Contains("delivering to subscription 5", StringComparison.Ordinal));
        return frames[^1];
    }
}
