using System.Collections.Concurrent;
using FastBroker.Client;
using FastBroker.Testing;
using Xunit.Abstractions;
using static FastBroker.ClientTests.Wire;

namespace FastBroker.ClientTests;

/// <summary>
/// kill -9 of a real server process while publishes are in flight, then a restart on the same port and data
/// directory: the same client reconnects by itself, every publish completes, nothing is stored twice (idempotent
/// producer), and a live subscription continues without gaps or repeats.
/// </summary>
public class RestartTests(ITestOutputHelper output)
{
    private static readonly TimeSpan s_long = TimeSpan.FromMinutes(4);

    [Fact]
    public async Task Kill9_of_the_server_mid_stream_loses_nothing_and_stores_nothing_twice()
    {
        const int Window = 512;
        var seed = Environment.TickCount;
        var killAfter = 500 + new Random(seed).Next(0, 2000);
        output.WriteLine($"seed {seed}: kill after {killAfter} confirmations");
        using var dir = new TempDirectory("fastbroker-client-restart");
        var events = new ConcurrentQueue<BrokerClientEvent>();
        var host = await HostProcess.StartAsync(dir.Path);
        HostProcess? restarted = null;
        try
        {
            var options = BrokerClientOptions.Default with
            {
                Endpoints = [host.Endpoint],
                ReconnectTimeout = s_long,
                ConnectTimeout = TimeSpan.FromSeconds(30),
                MaxInFlight = 256,
                OnEvent = events.Enqueue,
            };
            await using var client = await BrokerClient.ConnectAsync(options);
            await using var live = await client.CreateSubscriptionAsync("restart.orders", SubscribeOptions.Default with { Start = SubscribeStart.Earliest, Credit = 128 });

            // One producer streaming without pause: Window publishes outstanding (MaxInFlight of them on the wire, the
            // rest waiting in call order), a new one as soon as the oldest is confirmed, until 1000 after the kill.
            var publishes = new List<Task<long>>();
            var confirmed = 0;
            var enqueued = 0;
            var stopAt = int.MaxValue;
            var publisher = Task.Run(async () =>
            {
                var window = new Queue<Task<long>>();
                for (var i = 0; i < Volatile.Read(ref stopAt); i++)
                {
                    var task = client.PublishAsync("restart.orders", Bytes($"m{i}")).AsTask();
                    publishes.Add(task);
                    window.Enqueue(task);
                    Interlocked.Increment(ref enqueued);
                    if (window.Count >= Window)
                    {
                        await window.Dequeue();
                        Interlocked.Increment(ref confirmed);
                    }
                }
            });

            await EventuallyAsync(() => Volatile.Read(ref confirmed) >= killAfter || publisher.IsCompleted, $"{killAfter} publishes confirmed", s_long);
            Assert.False(publisher.IsFaulted, publisher.Exception?.ToString());
            host.Kill();
            Volatile.Write(ref stopAt, Volatile.Read(ref enqueued) + 1000);
            var pendingAtKill = client.PendingPublishes; // nothing can be confirmed any more: these were in flight
            output.WriteLine($"killed with {Volatile.Read(ref confirmed)} confirmed, {pendingAtKill} in flight");
            Assert.True(pendingAtKill > 0, "the kill must happen with publishes in flight");

            restarted = await HostProcess.StartAsync(dir.Path, host.Port);
            await publisher.WaitAsync(s_long);
            var offsets = await Task.WhenAll(publishes).WaitAsync(s_long);
            var n = offsets.Length;
            output.WriteLine($"{n} published, {client.ConnectCount} connections, {client.DuplicateConfirmations} resent and confirmed as duplicates");

            // A single producer's messages keep their order, and each is stored once: message i is at offset i.
            Assert.True(client.ConnectCount >= 2, "the client reconnected");
            for (var i = 0; i < n; i++)
            {
                Assert.True(offsets[i] == i, $"message {i} was confirmed at offset {offsets[i]} (a duplicate or a gap before it)");
            }

            // The live subscription resumed where it was: every message once, in order.
            var received = await TakeAsync(live, n, s_long);
            Assert.Equal(Enumerable.Range(0, n).Select(i => (long)i), received.Select(m => m.Offset));
            Assert.Equal(Enumerable.Range(0, n).Select(i => $"m{i}"), received.Select(m => m.GetPayloadString()));

            // From the log itself, with a fresh client: exactly n messages, m{i} at offset i, nothing after.
            await using var reader = await BrokerClient.ConnectAsync(options with { Endpoints = [restarted.Endpoint], OnEvent = null });
            await using var replay = await reader.CreateSubscriptionAsync("restart.orders", SubscribeOptions.Default with { Start = SubscribeStart.Earliest, Credit = 512 });
            var stored = await TakeAsync(replay, n, s_long);
            for (var i = 0; i < n; i++)
            {
                Assert.Equal(i, stored[i].Offset);
                Assert.Equal($"m{i}", stored[i].GetPayloadString());
            }

            Assert.Equal(n, await reader.PublishAsync("restart.orders", Bytes("sentinel")));
            Assert.Contains(events, e => e.Kind == BrokerClientEventKind.Disconnected);
            Assert.DoesNotContain(events, e => e.Kind == BrokerClientEventKind.GaveUp);
        }
        finally
        {
            host.Dispose();
            restarted?.Dispose();
        }
    }

    [Fact]
    public async Task A_durable_subscription_resumes_from_its_commit_after_a_server_kill()
    {
        using var dir = new TempDirectory("fastbroker-client-restart");
        var host = await HostProcess.StartAsync(dir.Path);
        HostProcess? restarted = null;
        try
        {
            var options = BrokerClientOptions.Default with { Endpoints = [host.Endpoint], ReconnectTimeout = s_long, ConnectTimeout = TimeSpan.FromSeconds(30) };
            await using var client = await BrokerClient.ConnectAsync(options);
            for (var i = 0; i < 20; i++)
            {
                await client.PublishAsync("restart.audit", Bytes($"a{i}"));
            }

            await using var sub = await client.CreateSubscriptionAsync("restart.audit", SubscribeOptions.Default with
            {
                DurableName = "auditor",
                Start = SubscribeStart.Committed(Protocol.StartKind.Earliest),
                Credit = 4,
            });
            var first = await TakeAsync(sub, 10);
            await sub.CommitAsync().AsTask().WaitAsync(s_long);

            host.Kill();
            restarted = await HostProcess.StartAsync(dir.Path, host.Port);
            for (var i = 20; i < 25; i++)
            {
                await client.PublishAsync("restart.audit", Bytes($"a{i}")).AsTask().WaitAsync(s_long);
            }

            var rest = await TakeAsync(sub, 15, s_long);
            Assert.Equal(Enumerable.Range(0, 25).Select(i => $"a{i}"), first.Concat(rest).Select(m => m.GetPayloadString()));
        }
        finally
        {
            host.Dispose();
            restarted?.Dispose();
        }
    }
    /// <summary>
    /// Reply inboxes are transient topics, so a restarted broker numbers them from 0 again. A requester that had
    /// received N replies resumes its inbox at N, the server answers from 0, and the client must take what comes from
    /// there as new instead of dropping the next N replies as redeliveries (every request would time out).
    /// </summary>
    [Fact]
    public async Task Request_reply_works_after_the_server_restarts_although_the_inbox_numbers_from_zero_again()
    {
        using var dir = new TempDirectory("fastbroker-client-restart");
        var host = await HostProcess.StartAsync(dir.Path);
        HostProcess? restarted = null;
        try
        {
            var options = BrokerClientOptions.Default with { Endpoints = [host.Endpoint], ReconnectTimeout = s_long, ConnectTimeout = TimeSpan.FromSeconds(30) };
            await using var responderClient = await BrokerClient.ConnectAsync(options);
            await using var requests = await responderClient.CreateSubscriptionAsync("svc.restart");
            using var stop = new CancellationTokenSource();
            var probes = 0;
            var responder = Task.Run(async () =>
            {
                try
                {
                    await foreach (var request in requests.ReadAllAsync(stop.Token))
                    {
                        if (request.TryGetHeader("fb-reply-to", out _))
                        {
                            await responderClient.ReplyAsync(request, Bytes("echo:" + request.GetPayloadString()));
                        }
                        else
                        {
                            Interlocked.Increment(ref probes);
                        }
                    }
                }
                catch (OperationCanceledException)
                {
                }
            });

            await using var requester = await BrokerClient.ConnectAsync(options);
            for (var i = 0; i < 3; i++)
            {
                Assert.Equal($"echo:before{i}", (await requester.RequestAsync("svc.restart", Bytes($"before{i}"), TimeSpan.FromSeconds(60))).GetPayloadString());
            }

            host.Kill();
            restarted = await HostProcess.StartAsync(dir.Path, host.Port);
            Eventually.True(() => requester.ConnectCount >= 2 && responderClient.ConnectCount >= 2, "both clients reconnect", s_long);

            // A plain message reaches the responder once its subscription is live again (before that, a message to the
            // transient topic reaches nobody). Then every reply, at inbox offsets 0, 1, 2 again, must come through.
            for (var attempt = 0; Volatile.Read(ref probes) == 0; attempt++)
            {
                Assert.True(attempt < 600, "the responder never resubscribed");
                await requester.PublishAsync("svc.restart", Bytes("probe"));
                await Task.Delay(100); // the probe's pacing, not an assertion on time
            }

            for (var i = 0; i < 3; i++)
            {
                var reply = await requester.RequestAsync("svc.restart", Bytes($"after{i}"), TimeSpan.FromSeconds(60));
                Assert.Equal($"echo:after{i}", reply.GetPayloadString());
            }

            await stop.CancelAsync();
            await responder.WaitAsync(Deadline);
        }
        finally
        {
            host.Dispose();
            restarted?.Dispose();
        }
    }
}
