using FastBroker.Client;
using FastBroker.Protocol;
using FastBroker.Testing;
using static FastBroker.ClientTests.Wire;

namespace FastBroker.ClientTests;

/// <summary>
/// <see cref="BrokerClient.DisposeAsync"/> with everything a service has in flight at once (publishes awaiting their
/// CONFIRM, a <see cref="BrokerClient.SubscribeAsync"/> enumeration and a work-queue member's loop blocked waiting, a
/// handler subscription, a request waiting for its reply), connected and while reconnecting to a killed server: each
/// ends by a deadline as docs/client.md says (publishes and requests fail <see cref="ErrorCode.Closed"/>, enumerations
/// finish, a consumer's completion succeeds), DisposeAsync returns, and the client's receive threads are gone. Serial:
/// the threads are counted over the whole process.
/// </summary>
[Collection(nameof(SerialCollection))]
public class DisposalTests
{
    // Linux names a thread with its first 15 bytes: "fastbroker-client-rx" shows as this.
    private const string ReceiveThreadName = "fastbroker-clie";

    [Fact]
    public async Task Disposal_while_connected_ends_every_publish_enumeration_member_consumer_and_request_and_leaves_no_receive_thread()
    {
        await using var f = await ServerFixture.StartAsync();
        var baseline = ReceiveThreads();
        var client = await BrokerClient.ConnectAsync(f.ClientOptions() with { HeartbeatInterval = TimeSpan.FromMilliseconds(100) });
        Assert.True(ReceiveThreads() >= 1, "the connection has a receive thread"); // not "> baseline": an earlier test's may be ending
        var work = await StartWorkAsync(client);

        // Publishes still awaiting their CONFIRM when the client goes.
        var publishes = Enumerable.Range(0, 5_000).Select(i => client.PublishAsync("d.publish", Bytes($"p{i}")).AsTask()).ToList();
        await client.DisposeAsync().AsTask().WaitAsync(Deadline);

        await work.AssertEndedAsync();
        foreach (var p in publishes)
        {
            // Confirmed before the disposal or failed by it: never left waiting.
            var outcome = await Record.ExceptionAsync(() => p.WaitAsync(Deadline));
            Assert.True(outcome is null || outcome is BrokerClientException { ErrorCode: ErrorCode.Closed }, $"a publish ended with {outcome}");
        }

        await EventuallyAsync(() => ReceiveThreads() <= baseline, $"the receive thread ended (now {ReceiveThreads()}, before {baseline})");
    }

    [Fact]
    public async Task Disposal_while_reconnecting_to_a_killed_server_ends_every_publish_enumeration_member_consumer_and_request()
    {
        using var dir = new TempDirectory("fastbroker-client-dispose");
        using var host = await HostProcess.StartAsync(dir.Path);
        var baseline = ReceiveThreads();
        var client = await BrokerClient.ConnectAsync(BrokerClientOptions.Default with
        {
            Endpoints = [host.Endpoint],
            ConnectTimeout = TimeSpan.FromSeconds(30),
            ReconnectTimeout = TimeSpan.FromMinutes(10),
            HeartbeatInterval = TimeSpan.FromMilliseconds(100),
        });
        var work = await StartWorkAsync(client);

        host.Kill();
        await EventuallyAsync(() => !client.IsConnected, "the client saw the server go");
        var publishes = Enumerable.Range(0, 100).Select(i => client.PublishAsync("d.publish", Bytes($"p{i}")).AsTask()).ToList();
        var flush = client.FlushAsync();
        Assert.All(publishes, p => Assert.False(p.IsCompleted));

        await client.DisposeAsync().AsTask().WaitAsync(Deadline);

        await work.AssertEndedAsync();
        foreach (var p in publishes)
        {
            var error = await Assert.ThrowsAsync<BrokerClientException>(() => p.WaitAsync(Deadline));
            Assert.Equal(ErrorCode.Closed, error.ErrorCode);
        }

        Assert.Equal(ErrorCode.Closed, (await Assert.ThrowsAsync<BrokerClientException>(() => flush.WaitAsync(Deadline))).ErrorCode);
        Assert.False(client.IsConnected);
        await EventuallyAsync(() => ReceiveThreads() <= baseline, $"no receive thread is left (now {ReceiveThreads()}, before {baseline})");
    }

    /// <summary>Threads of this process whose name starts like the client's receive thread (Linux: /proc/self/task).</summary>
    private static int ReceiveThreads()
    {
        var count = 0;
        foreach (var task in Directory.EnumerateDirectories("/proc/self/task"))
        {
            try
            {
                if (File.ReadAllText(Path.Combine(task, "comm")).TrimEnd('\n') == ReceiveThreadName)
                {
                    count++;
                }
            }
            catch (IOException)
            {
                // The thread ended while it was listed.
            }
        }

        return count;
    }

    /// <summary>
    /// A subscription enumeration, a group member's loop, a handler consumer and a request, each shown to be waiting
    /// (the enumeration and the member have taken one message each, the request has reached its responder).
    /// </summary>
    private static async Task<Work> StartWorkAsync(BrokerClient client)
    {
        Assert.True(client.IsConnected);
        var enumerated = 0;
        var subscriber = Task.Run(async () =>
        {
            await foreach (var m in client.SubscribeAsync("d.sub", SubscribeOptions.Default with { Start = SubscribeStart.Earliest }))
            {
                Interlocked.Increment(ref enumerated);
            }
        });
        var member = await client.JoinGroupAsync("d.jobs", "workers");
        var worked = 0;
        var worker = Task.Run(async () =>
        {
            await foreach (var job in member.ReadAllAsync())
            {
                await member.AckAsync(job);
                Interlocked.Increment(ref worked);
            }
        });
        var consumer = await client.ConsumeAsync("d.handled", new Ignore());
        await client.PublishAsync("d.sub", Bytes("one"));
        await client.PublishAsync("d.jobs", Bytes("job"));
        await EventuallyAsync(() => Volatile.Read(ref enumerated) == 1 && Volatile.Read(ref worked) == 1, "the enumeration and the member took their message");
        var responder = await client.CreateSubscriptionAsync("d.nobody"); // receives the request and never answers
        var request = client.RequestAsync("d.nobody", Bytes("?"), TimeSpan.FromMinutes(10)).AsTask();
        Assert.Equal("?", (await TakeAsync(responder, 1)).Single().GetPayloadString()); // sent: now it waits for the reply
        Assert.False(subscriber.IsCompleted || worker.IsCompleted || consumer.Completion.IsCompleted || request.IsCompleted);
        return new Work(subscriber, worker, consumer, request);
    }

    private sealed record Work(Task Subscriber, Task Worker, ClientConsumer Consumer, Task<ClientMessage> Request)
    {
        public async Task AssertEndedAsync()
        {
            await Subscriber.WaitAsync(Deadline); // enumerations finish after what was buffered (docs: DisposeAsync)
            await Worker.WaitAsync(Deadline);
            await Consumer.Completion.WaitAsync(Deadline);
            Assert.False(Consumer.IsActive);
            var error = await Assert.ThrowsAsync<BrokerClientException>(() => Request.WaitAsync(Deadline));
            Assert.Equal(ErrorCode.Closed, error.ErrorCode);
        }
    }

    private readonly struct Ignore : IClientMessageHandler
    {
        public void OnMessage(scoped in ClientMessageView message)
        {
        }
    }
}
