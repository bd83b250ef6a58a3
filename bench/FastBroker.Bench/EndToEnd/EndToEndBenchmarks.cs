using System.Buffers.Binary;
using System.Diagnostics;
using FastBroker.Bench.Infrastructure;
using FastBroker.Bench.Pair;
using FastBroker.Client;
using FastBroker.Server;

namespace FastBroker.Bench.EndToEnd;

/// <summary>
/// `fastbroker bench e2e`: the server over loopback, driven by the .NET client, 100-byte messages on a persistent
/// topic: publish with confirmations (one connection, pipelined), publish + 1 subscriber, fan-out to 3, a work
/// queue with 3 acking members, request-reply round trips, and publish→confirm latency at a fixed 10k msg/s with
/// coordinated-omission-corrected percentiles. Starts <c>fastbroker serve</c> as a child process (same 2 cores as the
/// load; <c>--server in-process</c>: a server in this process), or drives one given with <c>--connect host:port</c>. With <c>--acks</c> it measures the ack modes of a failover pair
/// instead (EndToEndBenchmarks.Acks.cs).
/// </summary>
public static partial class EndToEndBenchmarks
{
    private const int PayloadBytes = 100;

    /// <summary>
    /// Runs every selected variant against <paramref name="connect"/>, else against `serve` started from
    /// <paramref name="serveExecutable"/> as a child process, else (null) against a server in this process.
    /// </summary>
    public static void Run(BenchContext ctx, string? connect, FastBrokerExecutable? serveExecutable = null) => RunAsync(ctx, connect, serveExecutable).GetAwaiter().GetResult();

    private static async Task RunAsync(BenchContext ctx, string? connect, FastBrokerExecutable? serveExecutable)
    {
        var n = (int)(ctx.Messages ?? 1_000_000);
        ctx.WarmUpMachine();
        await using var child = connect is null && serveExecutable is not null ? await ServeChild.StartAsync(serveExecutable, ctx.WorkDirectory).ConfigureAwait(false) : null;
        await using var server = connect is null && child is null ? await LocalServer.StartAsync(ctx).ConfigureAwait(false) : null;
        var where = connect is not null ? $"server at {connect}"
            : child is not null ? $"`fastbroker serve` child process at {child.Endpoint} (same cores as the load)"
            : "in-process server on 127.0.0.1 (same cores and thread pool as the load)";
        ctx.Reporter.Info($"{where}, persistent topics, {PayloadBytes} B payloads, {n:N0} messages per throughput run, {Environment.ProcessorCount} cores");
        var endpoint = connect ?? child?.Endpoint ?? server!.Endpoint;
        var run = 0;

        // One topic per variant, reused across its runs (each run starts after the previous one's last offset): a new
        // topic costs a segment pre-allocation, which is not what these variants measure.
        string Topic(string variant) => $"bench.{variant}.{Environment.ProcessId}";
        string FreshTopic(string variant) => $"bench.{variant}.{Environment.ProcessId}.{run++}";

        if (ctx.Selected("publish"))
        {
            Report(ctx, "publish", n, ctx.MedianOf("publish", _ => Sync(() => PublishAsync(endpoint, Topic("publish"), n, subscribers: 0))), "one connection, pipelined, every message confirmed");
        }

        if (ctx.Selected("publish-1sub"))
        {
            Report(ctx, "publish-1sub", n, ctx.MedianOf("publish-1sub", _ => Sync(() => PublishAsync(endpoint, Topic("publish-1sub"), n, subscribers: 1))), "until the subscriber has every message");
        }

        if (ctx.Selected("fanout-3"))
        {
            Report(ctx, "fanout-3", n, ctx.MedianOf("fanout-3", _ => Sync(() => PublishAsync(endpoint, Topic("fanout-3"), n, subscribers: 3))), "deliveries/s over 3 subscriber connections");
        }

        if (ctx.Selected("workqueue-3"))
        {
            var wq = Math.Max(10_000, n / 4);
            Report(ctx, "workqueue-3", wq, ctx.MedianOf("workqueue-3", _ => Sync(() => WorkQueueAsync(endpoint, FreshTopic("workqueue-3"), wq, 3))), "3 member connections, prefetch 256, every message acked");
        }

        if (ctx.Selected("request-reply"))
        {
            var count = Math.Max(2_000, Math.Min(n / 50, 50_000));
            await LatencyVariantAsync(ctx, "request-reply", count, h => RequestReplyAsync(endpoint, Topic("request-reply"), count, h), "sequential round trips: request → responder → reply").ConfigureAwait(false);
        }

        if (ctx.Selected("confirm-latency-10k"))
        {
            var count = Math.Max(20_000, Math.Min(n / 10, 100_000));
            await LatencyVariantAsync(ctx, "confirm-latency-10k", count, h => ConfirmLatencyAsync(endpoint, Topic("confirm-latency-10k"), count, 10_000, PublishOptions.Default, h), "publish→confirm at 10,000 msg/s, CO-corrected").ConfigureAwait(false);
        }

        if (ctx.Selected("confirm-latency-10k-inline"))
        {
            var count = Math.Max(20_000, Math.Min(n / 10, 100_000));
            await LatencyVariantAsync(ctx, "confirm-latency-10k-inline", count, h => ConfirmLatencyAsync(endpoint, Topic("confirm-latency-10k"), count, 10_000, PublishOptions.Default, h, inlineCompletions: true), "the same with InlineCompletions: the code after await runs on the client's receive thread").ConfigureAwait(false);
        }
    }

    private static double Sync(Func<Task<double>> body) => body().GetAwaiter().GetResult();

    private static async Task LatencyVariantAsync(BenchContext ctx, string variant, int count, Func<LogLinearHistogram, Task<double>> body, string note) =>
        ctx.Reporter.Result(await MeasureLatencyAsync(ctx, variant, count, body, note).ConfigureAwait(false));

    /// <summary>Warm-up + <see cref="BenchContext.Runs"/> runs of a latency variant; the run with the median p50 (not reported yet).</summary>
    private static async Task<BenchResult> MeasureLatencyAsync(BenchContext ctx, string variant, int count, Func<LogLinearHistogram, Task<double>> body, string note)
    {
        var histograms = new List<LogLinearHistogram>();
        var rates = new List<double>();
        ctx.MedianOf(variant, _ =>
        {
            var h = new LogLinearHistogram();
            rates.Add(Sync(() => body(h)));
            histograms.Add(h);
            return h.ValueAtPercentile(50);
        });

        // Report the run with the median p50 (its percentiles belong together); skip the warm-up run.
        var runs = histograms.Zip(rates).Skip(1).OrderBy(x => x.First.ValueAtPercentile(50)).ToList();
        var (mid, rate) = runs[runs.Count / 2];
        await Task.CompletedTask.ConfigureAwait(false);
        return new BenchResult("e2e", variant) { MsgsPerSec = rate, Runs = ctx.Runs, Messages = count, Note = note }.WithLatency(mid);
    }

    private static void Report(BenchContext ctx, string variant, long messages, double perSecond, string note) =>
        ctx.Reporter.Result(new BenchResult("e2e", variant) { MsgsPerSec = perSecond, BytesPerSec = perSecond * PayloadBytes, Runs = ctx.Runs, Messages = messages, Note = note });

    private static BrokerClientOptions Options(string endpoint) => BrokerClientOptions.Default with { Endpoints = [endpoint], ClientName = "fastbroker-bench", Reconnect = false };

    /// <summary>Publishes <paramref name="n"/> messages pipelined on one connection; with subscribers, times until each has all (deliveries/s).</summary>
    private static async Task<double> PublishAsync(string endpoint, string topic, int n, int subscribers)
    {
        await using var publisher = await BrokerClient.ConnectAsync(Options(endpoint)).ConfigureAwait(false);
        var first = await publisher.PublishAsync(topic, new byte[PayloadBytes]).ConfigureAwait(false) + 1; // creates the topic
        var consumers = new List<BrokerClient>();
        var tasks = new List<Task>();
        try
        {
            for (var i = 0; i < subscribers; i++)
            {
                var c = await BrokerClient.ConnectAsync(Options(endpoint)).ConfigureAwait(false);
                consumers.Add(c);

                // Handler subscriptions: each delivery is counted on the client's reader loop, with no copy, no
                // ClientMessage and no hand-off to another task (disposed with the client).
                var counter = new CountingHandler(n);
                await c.ConsumeAsync(topic, counter, SubscribeOptions.Default with { Start = SubscribeStart.AtOffset(first), Credit = 8192 }).ConfigureAwait(false);
                tasks.Add(counter.Done.Task);
            }

            var sw = Stopwatch.StartNew();
            await PublishPipelinedAsync(publisher, topic, n).ConfigureAwait(false);

            await Task.WhenAll(tasks).WaitAsync(TimeSpan.FromMinutes(5)).ConfigureAwait(false);
            var seconds = sw.Elapsed.TotalSeconds;
            return n * (double)Math.Max(1, subscribers) / seconds;
        }
        finally
        {
            foreach (var c in consumers)
            {
                await c.DisposeAsync().ConfigureAwait(false);
            }
        }
    }

    /// <summary>Publishes <paramref name="n"/> messages with up to 4,096 unconfirmed; returns once all are confirmed.</summary>
    private static async Task PublishPipelinedAsync(BrokerClient publisher, string topic, int n)
    {
        var payload = new byte[PayloadBytes];
        var window = new Queue<ValueTask<long>>(4096);
        for (var i = 0; i < n; i++)
        {
            if (window.Count == 4096)
            {
                await window.Dequeue().ConfigureAwait(false);
            }

            window.Enqueue(publisher.PublishAsync(topic, payload));
        }

        while (window.Count > 0)
        {
            await window.Dequeue().ConfigureAwait(false);
        }
    }

    private static async Task<double> WorkQueueAsync(string endpoint, string topic, int n, int members)
    {
        await using var publisher = await BrokerClient.ConnectAsync(Options(endpoint)).ConfigureAwait(false);
        await publisher.PublishAsync(topic, new byte[PayloadBytes]).ConfigureAwait(false);
        var clients = new List<BrokerClient>();
        var acked = 0;
        using var done = new CancellationTokenSource();
        var tasks = new List<Task>();
        try
        {
            for (var i = 0; i < members; i++)
            {
                var c = await BrokerClient.ConnectAsync(Options(endpoint)).ConfigureAwait(false);
                clients.Add(c);
                var member = await c.JoinGroupAsync(topic, topic, GroupJoinOptions.Default with { Prefetch = 256 }).ConfigureAwait(false);
                tasks.Add(Task.Run(async () =>
                {
                    try
                    {
                        await foreach (var m in member.ReadAllAsync(done.Token).ConfigureAwait(false))
                        {
                            await member.AckAsync(m).ConfigureAwait(false);
                            if (Interlocked.Increment(ref acked) >= n + 1)
                            {
                                await done.CancelAsync().ConfigureAwait(false);
                            }
                        }
                    }
                    catch (OperationCanceledException)
                    {
                    }
                }));
            }

            var sw = Stopwatch.StartNew();
            await PublishPipelinedAsync(publisher, topic, n).ConfigureAwait(false);

            await Task.WhenAll(tasks).WaitAsync(TimeSpan.FromMinutes(5)).ConfigureAwait(false);
            return n / sw.Elapsed.TotalSeconds;
        }
        finally
        {
            foreach (var c in clients)
            {
                await c.DisposeAsync().ConfigureAwait(false);
            }
        }
    }

    private static async Task<double> RequestReplyAsync(string endpoint, string topic, int count, LogLinearHistogram histogram)
    {
        await using var responder = await BrokerClient.ConnectAsync(Options(endpoint)).ConfigureAwait(false);
        await using var requester = await BrokerClient.ConnectAsync(Options(endpoint)).ConfigureAwait(false);
        using var stop = new CancellationTokenSource();
        var sub = await responder.CreateSubscriptionAsync(topic, SubscribeOptions.Default with { Start = SubscribeStart.Latest, Credit = 1024 }).ConfigureAwait(false);
        var serving = Task.Run(async () =>
        {
            try
            {
                await foreach (var request in sub.ReadAllAsync(stop.Token).ConfigureAwait(false))
                {
                    responder.Publish(request.Headers.GetString("fb-reply-to")!, request.Payload.Span, PublishOptions.Default with { Headers = new PublishHeaders().Add("fb-correlation-id", request.Headers.TryGetValue("fb-correlation-id", out var id) ? id.Span : default) });
                }
            }
            catch (OperationCanceledException)
            {
            }
        });

        var payload = new byte[PayloadBytes];
        await requester.RequestAsync(topic, payload, TimeSpan.FromSeconds(30)).ConfigureAwait(false); // first: inbox + topic creation
        var sw = Stopwatch.StartNew();
        for (var i = 0; i < count; i++)
        {
            var t0 = Stopwatch.GetTimestamp();
            await requester.RequestAsync(topic, payload, TimeSpan.FromSeconds(30)).ConfigureAwait(false);
            histogram.Record((long)Stopwatch.GetElapsedTime(t0).TotalNanoseconds);
        }

        var rate = count / sw.Elapsed.TotalSeconds;
        await stop.CancelAsync().ConfigureAwait(false);
        await serving.ConfigureAwait(false);
        return rate;
    }

    private static async Task<double> ConfirmLatencyAsync(string endpoint, string topic, int count, int rate, PublishOptions options, LogLinearHistogram histogram, bool inlineCompletions = false)
    {
        await using var client = await BrokerClient.ConnectAsync(Options(endpoint) with { InlineCompletions = inlineCompletions }).ConfigureAwait(false);
        await client.PublishAsync(topic, new byte[PayloadBytes]).ConfigureAwait(false);
        var intervalTicks = Stopwatch.Frequency / (double)rate;
        var nsPerTick = 1e9 / Stopwatch.Frequency;
        var gate = new object();
        var recorded = 0;
        var done = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);

        // Each confirmation is timed where its continuation runs (a pool worker, or with inline completions the
        // client's receive thread), as an application's code after `await PublishAsync` would be.
        void Record(long scheduled)
        {
            var now = Stopwatch.GetTimestamp();
            lock (gate)
            {
                histogram.Record((long)((now - scheduled) * nsPerTick));
                if (++recorded == count)
                {
                    done.TrySetResult();
                }
            }
        }

        async Task TimeAsync(ValueTask<long> confirm, long scheduled)
        {
            await confirm.ConfigureAwait(false);
            Record(scheduled);
        }

        var payload = new byte[PayloadBytes];
        var start = Stopwatch.GetTimestamp() + (Stopwatch.Frequency / 100);
        var sw = Stopwatch.StartNew();
        var sender = new Thread(() =>
        {
            for (var i = 0; i < count; i++)
            {
                // The intended send time, not the actual one: a stalled sender charges the stall to every message
                // it delayed (coordinated-omission correction).
                var scheduled = start + (long)(i * intervalTicks);
                Pacer.WaitUntil(scheduled);
                BinaryPrimitives.WriteInt64LittleEndian(payload, scheduled);
                _ = TimeAsync(client.PublishAsync(topic, payload, options), scheduled);
            }
        })
        { Name = "bench-e2e-pacer", IsBackground = true };
        sender.Start();
        await done.Task.WaitAsync(TimeSpan.FromMinutes(5)).ConfigureAwait(false);
        sender.Join();
        return count / sw.Elapsed.TotalSeconds;
    }

    /// <summary>A broker + server in this process on a temporary directory and a free loopback port.</summary>
    private sealed class LocalServer : IAsyncDisposable
    {
        private readonly string _dir;
        private readonly FastBroker.Broker _broker;
        private readonly BrokerServer _server;

        private LocalServer(string dir, FastBroker.Broker broker, BrokerServer server)
        {
            _dir = dir;
            _broker = broker;
            _server = server;
        }

        public string Endpoint => _server.EndPoint.ToString();

        public static async Task<LocalServer> StartAsync(BenchContext ctx)
        {
            var dir = Path.Combine(ctx.WorkDirectory ?? Path.GetTempPath(), "fastbroker-bench-e2e-" + Guid.NewGuid().ToString("N"));
            var broker = await FastBroker.Broker.OpenAsync(BrokerOptions.Default with
            {
                DataDirectory = dir,
                DefaultTopicOptions = TopicOptions.Default with { MaxMessageBytes = 4096 },
            }).ConfigureAwait(false);
            var server = await BrokerServer.StartAsync(broker, ServerOptions.Default with { Port = 0 }).ConfigureAwait(false);
            return new LocalServer(dir, broker, server);
        }

        public async ValueTask DisposeAsync()
        {
            await _server.StopAsync(TimeSpan.FromSeconds(5)).ConfigureAwait(false);
            await _broker.DisposeAsync().ConfigureAwait(false);
            try
            {
                Directory.Delete(_dir, recursive: true);
            }
            catch (IOException)
            {
            }
        }
    }

    /// <summary>Counts deliveries on the reader loop and completes <see cref="Done"/> at the expected count.</summary>
    private sealed class CountingHandler(int expected) : IClientMessageHandler
    {
        private int _seen;

        public TaskCompletionSource Done { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

        public void OnMessage(scoped in ClientMessageView message)
        {
            // One reader loop per subscriber calls it, so a plain increment suffices; Volatile for readers elsewhere.
            var seen = _seen + 1;
            Volatile.Write(ref _seen, seen);
            if (seen == expected)
            {
                Done.TrySetResult();
            }
        }
    }
}
