using FastBroker.Protocol;
using FastBroker.Testing;

namespace FastBroker.ServerTests;

/// <summary>
/// A session under a hostile or unlucky peer: protocol-error close lines are rate-limited per text, an unexpected
/// failure on the reader still ends with an ERROR, and a durable name taken over while its holder subscribes is not refused.
/// </summary>
public class SessionHardeningTests
{
    [Fact]
    public async Task Connections_closed_for_the_same_bad_frame_log_one_line_then_a_count_and_another_error_at_once()
    {
        var clock = new ManualClock();
        await using var f = await ServerFixture.StartAsync(o => o with { LogClock = clock });

        var first = await f.SendBadFrameAsync();
        for (var i = 1; i < 25; i++)
        {
            var error = await f.SendBadFrameAsync();
            Assert.Equal((first.ErrorCode, first.ErrorReason, first.RequestId), (error.ErrorCode, error.ErrorReason, error.RequestId));
        }

        // The line is logged before the ERROR is queued: every close so far is in the log.
        Assert.True(f.Closes.Count == 1, $"25 connections closed for the same frame, one line expected: [{string.Join(" | ", f.Closes)}]");
        Assert.Equal(25, f.Server.ProtocolErrorCloses);

        // Another error: at once.
        await using (var early = await RawConnection.ConnectAsync(f.EndPoint))
        {
            await early.SendAsync(w => FrameWriter.WritePing(w, 1));
            await early.ExpectClosedWithAsync(ErrorCode.UnexpectedFrame);
        }

        Assert.True(f.Closes.Count == 2 && f.Closes[1].Contains("HELLO must be the first frame", StringComparison.Ordinal), $"another error is logged at once: [{string.Join(" | ", f.Closes)}]");

        // Once the text has been quiet for the interval, the idle timer logs the count held back; the next one is at once.
        clock.Advance(TimeSpan.FromSeconds(10));
        await Eventually.TrueAsync(() => f.Closes.Count >= 3, "the idle timer logs the count held back", TimeSpan.FromSeconds(60));
        var lines = f.Closes;
        Assert.True(lines.Count == 3 && lines[2].EndsWith("(and 24 more like it since the last such line, not logged; no longer repeating)", StringComparison.Ordinal), $"the third line carries the count: [{string.Join(" | ", lines)}]");
        Assert.Contains(first.ErrorReason, lines[2], StringComparison.Ordinal);
        await f.SendBadFrameAsync();
        lines = f.Closes;
        Assert.True(lines.Count == 4 && !lines[3].Contains("more like it", StringComparison.Ordinal), $"the next one at once, without a count: [{string.Join(" | ", lines)}]");
    }

    [Fact]
    public async Task A_session_whose_reader_fails_unexpectedly_sends_an_ERROR_before_closing()
    {
        await using var f = await ServerFixture.StartAsync(o => o with
        {
            TestHook = (point, _) =>
            {
                if (point == "init-producer")
                {
                    throw new InvalidOperationException("the hook failed");
                }
            },
        });
        await using var c = await f.ConnectAsync(RawConnection.AllFeatures | ProtocolFeatures.InitProducer);
        await c.SendAsync(w => FrameWriter.WriteInitProducer(w, 5, 42));
        var frames = await c.ReadUntilClosedAsync();
        var last = frames.LastOrDefault();
        Assert.True(
            last is { CloseConnection: true, ErrorCode: ErrorCode.Internal } && last.ErrorReason.Contains("the hook failed", StringComparison.Ordinal),
            $"expected ERROR Internal with CLOSE naming the failure, got: [{string.Join(" | ", frames)}]");
        Assert.Contains(f.Log, l => l.Contains("reading failed: InvalidOperationException: the hook failed", StringComparison.Ordinal));
    }

    [Fact]
    public async Task A_broker_exception_on_the_reader_closes_with_its_code()
    {
        await using var f = await ServerFixture.StartAsync(o => o with
        {
            TestHook = (point, _) =>
            {
                if (point == "init-producer")
                {
                    throw new BrokerException(BrokerErrorCode.StorageError, "the disk said no");
                }
            },
        });
        await using var c = await f.ConnectAsync(RawConnection.AllFeatures | ProtocolFeatures.InitProducer);
        await c.SendAsync(w => FrameWriter.WriteInitProducer(w, 5, 42));
        var error = await c.ExpectClosedWithAsync(ErrorCode.StorageError);
        Assert.Contains("the disk said no", error.ErrorReason, StringComparison.Ordinal);
    }

    [Fact]
    public async Task INIT_PRODUCER_after_the_broker_closed_is_still_answered()
    {
        // The shutdown race reported with this: NextProducerSequence reads the registry and does not throw on a closed broker.
        await using var f = await ServerFixture.StartAsync();
        await using var c = await f.ConnectAsync(RawConnection.AllFeatures | ProtocolFeatures.InitProducer);
        await f.Broker.DisposeAsync();
        await c.SendAsync(w => FrameWriter.WriteInitProducer(w, 5, 42));
        var frames = await c.ReadUntilAsync(x => x.RequestId == 5);
        Assert.True(frames[^1] is { Type: FrameType.Ok, OkValue: 0 }, $"got [{string.Join(" | ", frames)}]");
    }

    [Fact]
    public async Task A_takeover_landing_while_the_holder_subscribes_waits_for_it_and_takes_the_name()
    {
        ulong holder = 0;
        ulong taker = 0;
        using var holderSubscribed = new ManualResetEventSlim();
        using var release = new ManualResetEventSlim();
        await using var f = await ServerFixture.StartAsync(o => o with
        {
            TestHook = (point, id) =>
            {
                if (point == "durable-subscribed" && id == Volatile.Read(ref holder) && !holderSubscribed.IsSet)
                {
                    // The holder has the name in the broker but no consumer yet: the taker's SUBSCRIBE lands now.
                    holderSubscribed.Set();
                    release.Wait(Eventually.DefaultTimeout);
                }
                else if (point == "durable-waiting" && id == Volatile.Read(ref taker))
                {
                    release.Set(); // the taker waits for the holder's subscribe to end
                }
            },
        });
        await using var a = await f.ConnectAsync();
        await using var b = await f.ConnectAsync();
        Volatile.Write(ref holder, a.Welcome!.ConnectionId);
        Volatile.Write(ref taker, b.Welcome!.ConnectionId);

        await a.SubscribeAsync(1, 1, "orders", 10, durable: "d");
        Assert.True(holderSubscribed.Wait(Eventually.DefaultTimeout), "the holder's SUBSCRIBE reached the hook");
        await b.SubscribeAsync(1, 1, "orders", 10, durable: "d");
        var reply = await b.ReadAsync();
        release.Set(); // the taker answered without waiting (or the hook already released the holder)
        Assert.True(reply is { Type: FrameType.Ok, RequestId: 1 }, $"the taker's SUBSCRIBE: {reply}");

        var frames = await a.ReadUntilAsync(x => x.SubscriptionEnded);
        Assert.True(frames[0] is { Type: FrameType.Ok, RequestId: 1 }, $"the holder's SUBSCRIBE: [{string.Join(" | ", frames)}]");
        Assert.Equal(ErrorCode.DurableNameInUse, frames[^1].ErrorCode);
        Assert.Empty(f.Failures);
    }

    /// <summary>
    /// A durable SUBSCRIBE that takes a name over waits for the holder's subscription to close (a delivery in progress
    /// first), under the name's gate. The gates were 64 shared by hash, so a SUBSCRIBE of an unrelated name on the same
    /// stripe waited for that takeover too; each name now has its own, removed when no SUBSCRIBE uses it.
    /// </summary>
    [Fact]
    public async Task A_durable_SUBSCRIBE_does_not_wait_for_the_takeover_of_another_name()
    {
        // Two names on one of the 64 stripes the gates were (the string hash is per process: found here, as the server would).
        static int Stripe(string name) => (StringComparer.Ordinal.GetHashCode(name) & int.MaxValue) % 64;
        const string Taken = "taken";
        var other = Enumerable.Range(0, 100_000).Select(i => $"other-{i}").First(n => Stripe(n) == Stripe(Taken));

        ulong holder = 0;
        ulong taker = 0;
        var holdDelivery = 0;
        using var delivering = new ManualResetEventSlim();
        using var takingOver = new ManualResetEventSlim();
        using var release = new ManualResetEventSlim();
        await using var f = await ServerFixture.StartAsync(o => o with
        {
            TestHook = (point, id) =>
            {
                if (point == "deliver" && id == Volatile.Read(ref holder) && Interlocked.Exchange(ref holdDelivery, 0) == 1)
                {
                    // The holder's writer is delivering (under its subscription's gate): the takeover's close waits for it.
                    delivering.Set();
                    release.Wait(RawConnection.ReadTimeout * 2); // longer than the other name's SUBSCRIBE is given
                }
                else if (point == "durable-takeover" && id == Volatile.Read(ref taker))
                {
                    takingOver.Set();
                }
            },
        });
        try
        {
            await f.Broker.PublishAsync("orders", "m0"u8.ToArray());
            await using var a = await f.ConnectAsync();
            await using var b = await f.ConnectAsync();
            await using var c = await f.ConnectAsync();
            Volatile.Write(ref holder, a.Welcome!.ConnectionId);
            Volatile.Write(ref taker, b.Welcome!.ConnectionId);

            Volatile.Write(ref holdDelivery, 1);
            await a.SubscribeAsync(1, 1, "orders", 10, durable: Taken);
            Assert.True(delivering.Wait(Eventually.DefaultTimeout), "the holder's delivery reached the hook");
            await b.SubscribeAsync(1, 1, "orders", 10, durable: Taken);
            Assert.True(takingOver.Wait(Eventually.DefaultTimeout), "the taker's SUBSCRIBE is taking the name over");

            await c.SubscribeAsync(1, 1, "orders", 10, durable: other);
            ServerFrame? reply = null;
            try
            {
                reply = await c.ReadAsync();
            }
            catch (TimeoutException)
            {
            }

            Assert.True(
                reply is { Type: FrameType.Ok, RequestId: 1 } && !release.IsSet,
                $"the SUBSCRIBE of '{other}' (the stripe of '{Taken}') while '{Taken}' is taken over: {reply?.ToString() ?? $"no answer within {RawConnection.ReadTimeout.TotalSeconds} s"}");

            release.Set();
            var taken = await b.ReadAsync();
            Assert.True(taken is { Type: FrameType.Ok, RequestId: 1 }, $"the taker's SUBSCRIBE: {taken}");
            var ended = await a.ReadUntilAsync(x => x.SubscriptionEnded);
            Assert.Equal(ErrorCode.DurableNameInUse, ended[^1].ErrorCode);
            Assert.True(f.Server.DurableGatesInUse == 0, $"{f.Server.DurableGatesInUse} durable names keep a gate with no SUBSCRIBE using it");
            Assert.Empty(f.Failures);
        }
        finally
        {
            release.Set();
        }
    }
}
