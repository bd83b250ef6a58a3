using FastBroker.Protocol;

namespace FastBroker.ServerTests;

/// <summary>
/// An exception the server has no code for is its own failure: ERROR <see cref="ErrorCode.Internal"/>, not
/// <see cref="ErrorCode.InvalidArgument"/>, which tells a client to fix a request that was fine. An
/// <see cref="ArgumentException"/> stays <see cref="ErrorCode.InvalidArgument"/>.
/// </summary>
public class InternalErrorTests
{
    [Fact]
    public async Task A_SUBSCRIBE_that_fails_unexpectedly_is_answered_Internal_naming_the_failure_and_the_connection_stays()
    {
        await using var f = await StartThrowingAsync(() => new InvalidOperationException("the hook failed"));
        await using var c = await f.ConnectAsync();
        await c.SubscribeAsync(1, 1, "orders", 10, durable: "d");
        var reply = await c.ReadAsync();
        Assert.True(
            reply is { Type: FrameType.Error, RequestId: 1, ErrorCode: ErrorCode.Internal, CloseConnection: false } && reply.ErrorReason.Contains("the hook failed", StringComparison.Ordinal),
            $"expected ERROR#1 Internal naming the failure, got: {reply}");
        Assert.Contains(f.Log, l => l.Contains("SUBSCRIBE failed: InvalidOperationException: the hook failed", StringComparison.Ordinal));

        // The connection is still usable.
        await c.SubscribeAsync(2, 2, "orders", 10);
        var ok = await c.ReadAsync();
        Assert.True(ok is { Type: FrameType.Ok, RequestId: 2 }, $"a SUBSCRIBE after it: {ok}");
    }

    [Fact]
    public async Task A_durable_SUBSCRIBE_that_failed_unexpectedly_leaves_its_name_free_for_a_retry()
    {
        var fail = 1;
        await using var f = await StartThrowingAsync(() => Interlocked.Exchange(ref fail, 0) == 1 ? new InvalidOperationException("the hook failed") : null);
        await using var c = await f.ConnectAsync();
        await c.SubscribeAsync(1, 1, "orders", 10, durable: "d");
        var refused = await c.ReadAsync();
        Assert.True(refused is { Type: FrameType.Error, RequestId: 1 }, $"the first SUBSCRIBE: {refused}");

        await c.SubscribeAsync(2, 1, "orders", 10, durable: "d");
        var retry = await c.ReadAsync();
        Assert.True(retry is { Type: FrameType.Ok, RequestId: 2 }, $"the retry of the durable SUBSCRIBE after ERROR Internal: {retry}");
    }

    [Fact]
    public async Task An_ArgumentException_in_a_SUBSCRIBE_is_still_answered_InvalidArgument()
    {
        await using var f = await StartThrowingAsync(() => new ArgumentOutOfRangeException("max", "the argument is out of range"));
        await using var c = await f.ConnectAsync();
        await c.SubscribeAsync(1, 1, "orders", 10, durable: "d");
        var reply = await c.ReadAsync();
        Assert.True(
            reply is { Type: FrameType.Error, RequestId: 1, ErrorCode: ErrorCode.InvalidArgument } && reply.ErrorReason.Contains("the argument is out of range", StringComparison.Ordinal),
            $"expected ERROR#1 InvalidArgument, got: {reply}");
    }

    [Fact]
    public async Task An_ObjectDisposedException_in_a_SUBSCRIBE_is_answered_Closed()
    {
        await using var f = await StartThrowingAsync(() => new ObjectDisposedException("Subscription"));
        await using var c = await f.ConnectAsync();
        await c.SubscribeAsync(1, 1, "orders", 10, durable: "d");
        var reply = await c.ReadAsync();
        Assert.True(reply is { Type: FrameType.Error, RequestId: 1, ErrorCode: ErrorCode.Closed }, $"expected ERROR#1 Closed, got: {reply}");
    }

    /// <summary>A server whose durable SUBSCRIBEs throw what <paramref name="failure"/> returns once they hold the name (null: nothing).</summary>
    private static Task<ServerFixture> StartThrowingAsync(Func<Exception?> failure) => ServerFixture.StartAsync(o => o with
    {
        TestHook = (point, _) =>
        {
            if (point == "durable-subscribed" && failure() is { } e)
            {
                throw e;
            }
        },
    });
}
