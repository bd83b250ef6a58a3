using FastBroker.Client;
using FastBroker.Protocol;
using FastBroker.Testing;
using static FastBroker.ClientTests.Wire;

namespace FastBroker.ClientTests;

/// <summary>
/// The client's in-flight limit against the broker's deduplication window (<see cref="BrokerOptions.ProducerWindow"/>),
/// with a small window so that its edge is cheap to reach: the publishes a reconnect resends are stored once when
/// they span the window exactly (the end-to-end bench runs MaxInFlight = window = 65,536), and those a larger limit
/// lets fall out of it are refused with <c>InvalidArgument</c>, never stored a second time.
/// </summary>
public class DeduplicationWindowTests
{
    /// <summary>
    /// All <c>MaxInFlight</c> = window publishes are stored and none is confirmed (the proxy drops what the server
    /// sends) when the connection goes: the resend reaches back exactly window − 1 sequences behind the broker's
    /// highest. 256 also covers the broker's table growing from its initial 64 slots to the window.
    /// </summary>
    [Theory]
    [InlineData(64)]
    [InlineData(256)]
    public async Task Unconfirmed_publishes_spanning_exactly_the_window_are_resent_and_stored_once(int window)
    {
        await using var f = await ServerFixture.StartAsync(broker: o => o with { ProducerWindow = window });
        await using var proxy = new TcpProxy(f.Port);
        var client = await f.ConnectAsync(o => o with { Endpoints = [proxy.Endpoint], MaxInFlight = window });
        const string Topic = "window.exact";

        proxy.DropServerBytes = true;
        var tasks = Enumerable.Range(0, 2 * window).Select(i => client.PublishAsync(Topic, Bytes($"m{i}")).AsTask()).ToList();
        await EventuallyAsync(() => Head(f, Topic) == window, "the server stored the first window of publishes");
        Assert.All(tasks, t => Assert.False(t.IsCompleted)); // the second window waits for room: nothing was confirmed

        proxy.CutAllAndForwardServerBytes();
        var offsets = await Task.WhenAll(tasks).WaitAsync(Deadline);

        // The first window was stored before the cut (its resends are duplicates), the second after it.
        Assert.Equal(Enumerable.Range(0, 2 * window).Select(i => (long)i), offsets);
        Assert.True(client.DuplicateConfirmations >= window, $"{client.DuplicateConfirmations} duplicate confirmations");
        Assert.True(client.ConnectCount >= 2);
        await AssertStoredOnceAsync(client, f, Topic, tasks.Count, Enumerable.Range(0, 2 * window).ToDictionary(i => $"m{i}", i => (long)i));
    }

    /// <summary>
    /// The same edge while publishes stream on: the connection is cut again and again with confirmations in flight
    /// (wherever the cut lands), and the unconfirmed publishes never span more than the window.
    /// </summary>
    [Fact]
    public async Task A_stream_cut_repeatedly_with_the_in_flight_limit_at_the_window_stores_each_message_once()
    {
        const int Window = 64;
        const int Count = 4000;
        const int Cuts = 5;
        await using var f = await ServerFixture.StartAsync(broker: o => o with { ProducerWindow = Window });
        await using var proxy = new TcpProxy(f.Port);
        var client = await f.ConnectAsync(o => o with { Endpoints = [proxy.Endpoint], MaxInFlight = Window });
        const string Topic = "window.stream";

        // Beyond the in-flight limit a publish waits for room without blocking: all are queued at once, in order.
        var tasks = Enumerable.Range(0, Count).Select(i => client.PublishAsync(Topic, Bytes($"m{i}")).AsTask()).ToList();

        for (var cut = 1; cut <= Cuts; cut++)
        {
            var at = cut * Count / (Cuts + 1);
            await EventuallyAsync(() => Head(f, Topic) >= at, $"the server stored {at} messages");
            proxy.CutAll();
        }

        var offsets = await Task.WhenAll(tasks).WaitAsync(Deadline);

        // The client reconnects after a cut even with nothing left to send: the last publishes may all be confirmed
        // before the reconnection that shows a cut happened has finished.
        await EventuallyAsync(() => client.ConnectCount >= 2, "the client reconnected after a cut");
        var expected = new Dictionary<string, long>(Count);
        for (var i = 0; i < Count; i++)
        {
            expected.Add($"m{i}", offsets[i]);
        }

        await AssertStoredOnceAsync(client, f, Topic, Count, expected);
    }

    /// <summary>
    /// <c>MaxInFlight</c> = 4 × window: of the 4 × window stored but unconfirmed publishes, the resends of the oldest
    /// 3 × window are older than the window and refused (their tasks fail with the server's <c>InvalidArgument</c>),
    /// the newest window's are confirmed as duplicates, and what waited for room is stored after them. The topic holds
    /// every message once: none of the refused ones a second time.
    /// </summary>
    [Fact]
    public async Task Resends_older_than_the_window_are_refused_and_never_stored_twice()
    {
        const int Window = 64;
        const int InFlight = 4 * Window;
        const int Extra = Window; // waiting for room when the connection goes: new after the resend
        await using var f = await ServerFixture.StartAsync(broker: o => o with { ProducerWindow = Window });
        await using var proxy = new TcpProxy(f.Port);
        var client = await f.ConnectAsync(o => o with { Endpoints = [proxy.Endpoint], MaxInFlight = InFlight });
        const string Topic = "window.old";

        proxy.DropServerBytes = true;
        var tasks = Enumerable.Range(0, InFlight + Extra).Select(i => client.PublishAsync(Topic, Bytes($"m{i}")).AsTask()).ToList();
        await EventuallyAsync(() => Head(f, Topic) == InFlight, "the server stored every publish in flight");
        Assert.All(tasks, t => Assert.False(t.IsCompleted));

        proxy.CutAllAndForwardServerBytes();
        var outcomes = await Task.WhenAll(tasks.Select(SettleAsync)).WaitAsync(Deadline);

        // The broker's highest is InFlight − 1: a resend is inside the window when highest − sequence < Window.
        Assert.All(outcomes.Take(InFlight - Window), o =>
        {
            Assert.NotNull(o.Error);
            Assert.Equal(ErrorCode.InvalidArgument, o.Error.ErrorCode);
            Assert.Contains("deduplication window", o.Error.Reason, StringComparison.Ordinal);
        });
        var confirmed = outcomes.Skip(InFlight - Window).ToList();
        Assert.All(confirmed, o => Assert.Null(o.Error));
        Assert.Equal(Enumerable.Range(InFlight - Window, Window + Extra).Select(i => (long)i), confirmed.Select(o => o.Offset));
        Assert.True(client.DuplicateConfirmations >= Window, $"{client.DuplicateConfirmations} duplicate confirmations");

        // Stored once each: the refused ones from before the cut, the confirmed ones at the offsets their tasks got.
        var stored = await ReadTopicAsync(client, f, Topic);
        Assert.Equal(stored.Count, stored.Select(m => m.Payload).Distinct().Count()); // at most once
        for (var i = 0; i < outcomes.Length; i++)
        {
            if (outcomes[i].Error is null)
            {
                Assert.Equal(outcomes[i].Offset, Assert.Single(stored, m => m.Payload == $"m{i}").Offset); // succeeded: exactly once, there
            }
        }

        Assert.Equal(InFlight + Extra, stored.Count);
        Assert.Equal(InFlight + Extra, Head(f, Topic));
    }

    /// <summary>Reads <paramref name="topic"/> from the start: every message once, each at the offset expected.</summary>
    private static async Task AssertStoredOnceAsync(BrokerClient client, ServerFixture f, string topic, int count, Dictionary<string, long> expected)
    {
        var stored = await ReadTopicAsync(client, f, topic);
        Assert.Equal(count, stored.Count);
        Assert.Equal(count, stored.Select(m => m.Payload).Distinct().Count());
        foreach (var (payload, offset) in stored)
        {
            Assert.True(expected.TryGetValue(payload, out var want), $"unexpected payload {payload}");
            Assert.Equal(want, offset);
        }
    }

    /// <summary>A publish's outcome: its offset, or the server's refusal.</summary>
    private static async Task<(long Offset, BrokerClientException? Error)> SettleAsync(Task<long> publish)
    {
        try
        {
            return (await publish, null);
        }
        catch (BrokerClientException e)
        {
            return (-1, e);
        }
    }
}
