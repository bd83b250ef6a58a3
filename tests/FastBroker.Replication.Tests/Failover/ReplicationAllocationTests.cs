using System.Buffers;
using System.Text;
using FastBroker.Client;
using FastBroker.Engine;
using FastBroker.Replication.Internal;
using FastBroker.Testing;
using Xunit.Abstractions;

namespace FastBroker.ReplicationTests.Failover;

/// <summary>
/// The house standard on the replicated path: no allocation per message in steady state on any replication thread —
/// the primary's sender, its ack reader, its journaler's stage (shipping, polling for ACKs), the standby's receive
/// and durable threads. Two in-process nodes on 127.0.0.1; each thread reads its own counter
/// (<see cref="GC.GetAllocatedBytesForCurrentThread"/>) in a pass hook (<see cref="PrimaryReplicator.ThreadPassed"/>,
/// <see cref="StandbyReplica.ThreadPassed"/>) between the first and the last pass of the measured window. The
/// journaler (the broker's publish path with the replicator attached) is measured from an inline subscriber's handler,
/// which it calls per message. Local mode has the sender thread ship; a standby mode has the journaler ship itself.
/// </summary>
[Collection(nameof(FailoverCollection))]
public sealed class ReplicationAllocationTests(ITestOutputHelper output)
{
    private const string Topic = "orders.alloc";

    /// <summary>Published one at a time, each waiting for its confirmation: one RECORDS frame, one ACK (and one FLUSH, one durable ACK) each.</summary>
    private const int OneByOne = 2_000;

    /// <summary>Published in claims of 64, at most <see cref="InFlight"/> unconfirmed: bursts of many records per frame.</summary>
    private const int Pipelined = 20_000;

    private const int InFlight = 256;

    private static readonly byte[] s_topic = Encoding.UTF8.GetBytes(Topic);

    /// <summary>
    /// Per thread over the window. One object per message is ≥ 24 B: ≥ 48 KB for the one-by-one part alone (one frame
    /// per message each way); 1 KiB is half a byte per message of it.
    /// </summary>
    private const long Bound = 1024;

    /// <param name="mode">The topic's ack mode.</param>
    /// <param name="ackPollMs"><see cref="FastBroker.Replication.ReplicationOptions.AckPoll"/>.</param>
    /// <param name="overTcp">
    /// Publish through a client connection to the primary's server (its confirmations then go out from the thread that
    /// reads the ACK, a non-blocking send to the connection) instead of claims on the broker with a counting sink.
    /// </param>
    /// <param name="visibility">
    /// <see cref="FastBroker.Replication.ReplicationOptions.ConsumerVisibility"/>: with a standby mode the inline subscriber
    /// is run by the thread that reads the ACK raising the topic's visible end (its wake-up of the readers measured there).
    /// </param>
    [Theory]
    [InlineData(AckMode.Local, 0, false)]
    [InlineData(AckMode.StandbyReceived, 0, false)]
    [InlineData(AckMode.StandbyReceived, 1000, false)]
    [InlineData(AckMode.StandbyDurable, 0, false)]
    [InlineData(AckMode.StandbyReceived, 0, true)]
    [InlineData(AckMode.StandbyReceived, 1000, true)]
    [InlineData(AckMode.StandbyDurable, 0, true)]
    [InlineData(AckMode.Local, 0, false, AckMode.StandbyReceived)]
    [InlineData(AckMode.StandbyDurable, 0, true, AckMode.StandbyDurable)]
    public async Task Replication_threads_allocate_nothing_per_message_in_steady_state(AckMode mode, int ackPollMs, bool overTcp, AckMode visibility = AckMode.Local)
    {
        using var dir = new TempDirectory();
        var brokerOptions = BrokerOptions.Default with
        {
            DefaultTopicOptions = TopicOptions.Default with { Acks = mode },

            // The client is an idempotent producer: the journaler's table of its sequences grows lazily (doubling) up to
            // the window, a one-off per producer that the warm-up fills here (65,536 by default: 2.3 MB of growth
            // within the measured window otherwise).
            ProducerWindow = 4_096,
        };

        // Heartbeats (their state-file checks) are per time, not per message: far apart, so the window has none. The
        // standby's durable thread sends a keep-alive every 100 ms, so the primary does not take it for frozen.
        var (a, b) = await InProcessPair.StartAsync(dir, brokerOptions, o => o with
        {
            HeartbeatInterval = TimeSpan.FromSeconds(60),
            HeartbeatTimeout = TimeSpan.FromSeconds(240),
            AckTimeout = TimeSpan.FromSeconds(60),
            AckPoll = TimeSpan.FromMilliseconds(ackPollMs),
            ConsumerVisibility = visibility,

            // With polling on, the ack reader leaves arrived frames to the journaler for a while (a test-only hook):
            // otherwise scheduling alone decides which of them reads each ACK, and the poll may never be measured.
            AckReaderDefersFor = ackPollMs > 0 ? TimeSpan.FromMilliseconds(200) : TimeSpan.Zero,
        });
        await using var primaryNode = a;
        await using var standbyNode = b;
        var broker = a.Broker!;
        broker.CreateTopic(Topic);
        Assert.True(broker.Topics.TryGet(Topic, out var topic));
        var meter = new ThreadMeter();
        a.Replicator!.ThreadPassed = meter.Passed;
        b.Replica!.ThreadPassed = meter.Passed;
        using var inline = broker.SubscribeInline(Topic, new JournalerMeter(meter));
        var sink = new CountingSink();
        var bytes = Encoding.UTF8.GetBytes(new string('x', 100));
        var payload = new ReadOnlySequence<byte>(bytes);
        await using var client = overTcp
            ? await BrokerClient.ConnectAsync(BrokerClientOptions.Default with { Endpoints = [a.Server!.EndPoint.ToString()], Reconnect = false, MaxInFlight = 2048 })
            : null;
        Task Run(int count, int inFlight) => client is null
            ? Task.Run(() => Publish(broker, topic, sink, payload, count, inFlight))
            : PublishOverTcpAsync(client, topic, bytes, count, inFlight);

        // Warm-up: every path (JIT tiers, the held-confirmation queues grown past the in-flight bound by a burst).
        await Run(1_000, 1);
        await Run(1_024, 1_024);
        await Run(10_000, InFlight);
        var link = a.Replicator.Link;

        meter.Measuring = true;
        await Run(OneByOne, 1);
        await Run(Pipelined, InFlight);
        meter.Measuring = false;

        Assert.Equal(0, Volatile.Read(ref sink.Failed));
        Assert.Same(link, a.Replicator.Link); // one link throughout: its threads are those measured
        var report = meter.Report();
        output.WriteLine($"{mode}, ack poll {ackPollMs} ms, {(overTcp ? "over TCP" : "in process")}, consumer visibility {visibility}: {report}");
        Assert.Null(inline.Fault);
        var expected = new List<int>
        {
            (int)(mode == AckMode.Local ? ReplicationThread.Sender : ReplicationThread.JournalerShip),
            (int)(ackPollMs > 0 && mode == AckMode.StandbyReceived ? ReplicationThread.JournalerPoll : ReplicationThread.AckReader),
            (int)ReplicationThread.StandbyReceive,
            ThreadMeter.Journaler,
        };
        if (mode == AckMode.StandbyDurable)
        {
            expected.Add((int)ReplicationThread.StandbyDurable); // per message; otherwise a background flush per 100 ms
        }

        foreach (var slot in expected)
        {
            Assert.True(meter.Passes(slot) >= 2, $"{ThreadMeter.Name(slot)} measured over the window: {report}");
        }

        for (var slot = 0; slot <= ThreadMeter.Journaler; slot++)
        {
            Assert.True(meter.Threads(slot) <= 1, $"{ThreadMeter.Name(slot)} ran on one thread: {report}");
            Assert.True(meter.Bytes(slot) < Bound, $"{ThreadMeter.Name(slot)} allocated {meter.Bytes(slot)} B over {OneByOne + Pipelined} messages ({mode}, ack poll {ackPollMs} ms, {(overTcp ? "over TCP" : "in process")}): {report}");
        }
    }

    /// <summary>
    /// Publishes <paramref name="count"/> messages, at most <paramref name="inFlight"/> unconfirmed or not yet
    /// acknowledged by the standby, and waits for every confirmation and the standby's ACK of every record.
    /// </summary>
    private static void Publish(Broker broker, TopicState topic, CountingSink sink, ReadOnlySequence<byte> payload, int count, int inFlight)
    {
        var deadline = Environment.TickCount64 + 120_000;
        var done = 0;
        while (done < count)
        {
            var n = Math.Min(Math.Min(64, count - done), inFlight - (int)Math.Max(sink.NextToken - (ulong)Volatile.Read(ref sink.Confirmed), sink.NextToken - (ulong)Received(topic)));
            if (n <= 0 || !broker.TryBeginPublish(n, out var claim))
            {
                Assert.True(Environment.TickCount64 < deadline, $"published {done} of {count} within 120 s ({Volatile.Read(ref sink.Confirmed)} confirmed, {Volatile.Read(ref sink.Failed)} failed)");
                Thread.Yield();
                continue;
            }

            for (var i = 0; i < n; i++)
            {
                claim.Add(s_topic, default, default, payload, default, sink, sink.NextToken++);
            }

            claim.Commit();
            done += n;
        }

        Assert.True(
            Eventually.TryWait(() => (ulong)Volatile.Read(ref sink.Confirmed) + (ulong)Volatile.Read(ref sink.Failed) == sink.NextToken && (ulong)Received(topic) == sink.NextToken, TimeSpan.FromSeconds(120)),
            $"every publish confirmed and acknowledged by the standby within 120 s: {Volatile.Read(ref sink.Confirmed)} confirmed, {Volatile.Read(ref sink.Failed)} failed, {Received(topic)} received of {sink.NextToken}");
    }

    /// <summary>
    /// Publishes <paramref name="count"/> messages through <paramref name="client"/>, <paramref name="inFlight"/> at a
    /// time (each group confirmed before the next), and waits for the standby's ACK of every record.
    /// </summary>
    private static async Task PublishOverTcpAsync(BrokerClient client, TopicState topic, byte[] payload, int count, int inFlight)
    {
        var tasks = new List<Task<long>>(inFlight);
        var last = -1L;
        for (var done = 0; done < count; done += tasks.Count)
        {
            tasks.Clear();
            for (var i = 0; i < Math.Min(inFlight, count - done); i++)
            {
                tasks.Add(client.PublishAsync(Topic, payload).AsTask());
            }

            last = (await Eventually.Completes(Task.WhenAll(tasks), TimeSpan.FromSeconds(120))).Max();
        }

        Assert.True(
            Eventually.TryWait(() => Received(topic) > last, TimeSpan.FromSeconds(120)),
            $"the standby acknowledged offset {last} within 120 s (received up to {Received(topic)})");
    }

    private static long Received(TopicState topic) => topic.Replica?.ReceivedNext ?? 0;

    /// <summary>Called per message on the journaler: measures that thread (the broker's path, replicator stage included).</summary>
    private readonly struct JournalerMeter(ThreadMeter meter) : IMessageHandler
    {
        public void OnMessage(scoped in MessageView message) => meter.Pass(ThreadMeter.Journaler);
    }

    private sealed class CountingSink : IPublishConfirmSink
    {
        public long Confirmed;
        public long Failed;
        public ulong NextToken;

        public void OnPublishConfirmed(ulong token, long offset, bool duplicate) => Interlocked.Increment(ref Confirmed);

        public void OnPublishFailed(ulong token, BrokerErrorCode code, string reason) => Interlocked.Increment(ref Failed);
    }
}
