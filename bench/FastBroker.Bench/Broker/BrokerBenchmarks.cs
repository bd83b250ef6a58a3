using System.Buffers.Binary;
using System.Diagnostics;
using FastBroker.Bench.Infrastructure;

namespace FastBroker.Bench.Broker;

/// <summary>
/// `fastbroker bench broker`: the embedded broker end to end in one process (no sockets), persistent topic,
/// 100-byte messages: publish only, publish + 1 subscriber, fan-out to 3, a work queue with 3 acking members, and
/// publish→delivery latency at a fixed rate with coordinated-omission-corrected percentiles.
/// </summary>
public static class BrokerBenchmarks
{
    private const int PayloadBytes = 100;

    /// <summary>Runs every selected variant.</summary>
    public static void Run(BenchContext ctx)
    {
        var n = ctx.Messages ?? 2_000_000;
        ctx.WarmUpMachine();
        ctx.Reporter.Info($"persistent topic, {PayloadBytes} B payloads, {n:N0} messages per run, default (hybrid spin→yield→block) wait strategy, {Environment.ProcessorCount} cores");
        if (ctx.Selected("publish-only"))
        {
            Report(ctx, "publish-only", n, ctx.MedianOf("publish-only", _ => WithBroker(ctx, b => PublishOnly(b, n))));
        }

        if (ctx.Selected("publish-1sub"))
        {
            Report(ctx, "publish-1sub", n, ctx.MedianOf("publish-1sub", _ => WithBroker(ctx, b => FanOut(b, n, 1))));
        }

        if (ctx.Selected("fanout-3"))
        {
            Report(ctx, "fanout-3", n, ctx.MedianOf("fanout-3", _ => WithBroker(ctx, b => FanOut(b, n, 3))), "deliveries/s over 3 subscribers");
        }

        if (ctx.Selected("workqueue-3"))
        {
            var wq = Math.Max(10_000, n / 4);
            Report(ctx, "workqueue-3", wq, ctx.MedianOf("workqueue-3", _ => WithBroker(ctx, b => WorkQueue(b, wq, 3))), "3 members, prefetch 256, every message acked");
        }

        if (ctx.Selected("latency-100k-floor"))
        {
            RunLatency(ctx, "latency-100k-floor", n, LatencyPath.Floor, "no broker: the same pacer hands each timestamp to a spinning thread (the machine's floor)");
        }

        if (ctx.Selected("latency-100k"))
        {
            RunLatency(ctx, "latency-100k", n, LatencyPath.ConsumerThread, "consumer thread polling (yield) then sleeping on the subscription");
        }

        if (ctx.Selected("latency-100k-transient"))
        {
            // The journal's share of the tail: the same consumer thread on a transient topic (no journal, no file).
            RunLatency(ctx, "latency-100k-transient", n, LatencyPath.TransientConsumerThread, "transient topic (no journal), consumer thread as in latency-100k");
        }

        if (ctx.Selected("latency-100k-inline"))
        {
            RunLatency(ctx, "latency-100k-inline", n, LatencyPath.Inline, "inline subscription: handler on the pipeline thread");
        }
    }

    private enum LatencyPath
    {
        Floor,
        ConsumerThread,
        TransientConsumerThread,
        Inline,
    }

    private static void RunLatency(BenchContext ctx, string variant, long n, LatencyPath path, string consumer)
    {
        var rate = 100_000;
        var count = Math.Max(50_000, (int)Math.Min(n, 400_000));
        var histograms = new List<LogLinearHistogram>();
        ctx.MedianOf(variant, _ =>
        {
            var h = new LogLinearHistogram();
            if (path == LatencyPath.Floor)
            {
                LatencyFloor(count, rate, h);
            }
            else
            {
                WithBroker(ctx, b => path == LatencyPath.Inline ? LatencyInline(b, count, rate, h) : Latency(b, count, rate, h), persistent: path != LatencyPath.TransientConsumerThread);
            }

            histograms.Add(h);
            return h.ValueAtPercentile(50);
        });

        // Report the run with the median p50 (its percentiles belong together).
        var ordered = histograms.Skip(1).OrderBy(h => h.ValueAtPercentile(50)).ToList();
        var mid = ordered[ordered.Count / 2];
        ctx.Reporter.Result(new BenchResult("broker", variant) { Runs = ctx.Runs, Messages = count, Note = $"publish→delivery at {rate:N0} msg/s, CO-corrected; {consumer}" }.WithLatency(mid));
    }

    private static void Report(BenchContext ctx, string variant, long messages, double perSecond, string? note = null) =>
        ctx.Reporter.Result(new BenchResult("broker", variant) { MsgsPerSec = perSecond, BytesPerSec = perSecond * PayloadBytes, Runs = ctx.Runs, Messages = messages, Note = note });

    private static double WithBroker(BenchContext ctx, Func<FastBroker.Broker, double> body, bool persistent = true)
    {
        var dir = Path.Combine(ctx.WorkDirectory ?? Path.GetTempPath(), "fastbroker-bench-broker-" + Guid.NewGuid().ToString("N"));
        var broker = FastBroker.Broker.OpenAsync(BrokerOptions.Default with
        {
            DataDirectory = dir,
            DefaultTopicOptions = TopicOptions.Default with { SegmentBytes = 256L << 20, MaxMessageBytes = 4096 },
        }).AsTask().GetAwaiter().GetResult();
        try
        {
            broker.CreateTopic("bench", broker.Options.DefaultTopicOptions with { Persistent = persistent });
            return body(broker);
        }
        finally
        {
            broker.DisposeAsync().AsTask().GetAwaiter().GetResult();
            try
            {
                Directory.Delete(dir, recursive: true);
            }
            catch (IOException)
            {
            }
        }
    }

    private static void PublishAll(FastBroker.Broker broker, long n)
    {
        var payload = new byte[PayloadBytes];
        for (long i = 0; i < n; i++)
        {
            BinaryPrimitives.WriteInt64LittleEndian(payload, i);
            var spin = new SpinWait();
            while (!broker.TryPublish("bench", payload))
            {
                spin.SpinOnce(sleep1Threshold: -1);
            }
        }
    }

    private static double PublishOnly(FastBroker.Broker broker, long n)
    {
        var sw = Stopwatch.StartNew();
        PublishAll(broker, n);

        // A confirmed publish after the run confirms everything before it (per-topic order).
        broker.PublishAsync("bench", new byte[PayloadBytes]).AsTask().GetAwaiter().GetResult();
        return n / sw.Elapsed.TotalSeconds;
    }

    private static double FanOut(FastBroker.Broker broker, long n, int subscribers)
    {
        var subs = Enumerable.Range(0, subscribers).Select(_ => broker.Subscribe("bench", new SubscriptionOptions { Start = StartPosition.Earliest })).ToArray();
        try
        {
            var threads = subs.Select((s, i) => new Thread(() => Drain(s, n)) { Name = "bench-sub-" + i, IsBackground = true }).ToArray();
            var sw = Stopwatch.StartNew();
            foreach (var t in threads)
            {
                t.Start();
            }

            PublishAll(broker, n);
            foreach (var t in threads)
            {
                t.Join();
            }

            return n * subscribers / sw.Elapsed.TotalSeconds;
        }
        finally
        {
            foreach (var s in subs)
            {
                s.Dispose();
            }
        }
    }

    private static void Drain(Subscription s, long n)
    {
        var handler = new CountingHandler();
        var idle = 0;
        while (handler.Count < n)
        {
            if (s.Fetch(4096, ref handler) > 0)
            {
                idle = 0;
                continue;
            }

            if (++idle < 50)
            {
                Thread.Yield();
            }
            else
            {
                s.WaitAsync().AsTask().Wait(10);
            }
        }
    }

    private static double WorkQueue(FastBroker.Broker broker, long n, int members)
    {
        var done = 0L;
        var group = GroupOptions.Default with { Prefetch = 256, VisibilityTimeout = TimeSpan.FromMinutes(5) };
        var joined = Enumerable.Range(0, members).Select(_ => broker.JoinGroup("bench", "workers", group)).ToArray();
        var threads = joined.Select((m, i) => new Thread(() =>
        {
            var handler = new AckingHandler(m);
            var idle = 0;
            while (Interlocked.Read(ref done) < n)
            {
                var got = m.Fetch(256, ref handler);
                if (got > 0)
                {
                    Interlocked.Add(ref done, got);
                    idle = 0;
                }
                else if (++idle < 50)
                {
                    Thread.Yield();
                }
                else
                {
                    m.WaitAsync().AsTask().Wait(10);
                }
            }
        })
        { Name = "bench-worker-" + i, IsBackground = true }).ToArray();
        var sw = Stopwatch.StartNew();
        foreach (var t in threads)
        {
            t.Start();
        }

        PublishAll(broker, n);
        foreach (var t in threads)
        {
            t.Join();
        }

        var rate = n / sw.Elapsed.TotalSeconds;
        foreach (var m in joined)
        {
            m.Dispose();
        }

        return rate;
    }

    private static double Latency(FastBroker.Broker broker, int count, int ratePerSecond, LogLinearHistogram histogram)
    {
        using var sub = broker.Subscribe("bench", new SubscriptionOptions { Start = StartPosition.Latest });
        var consumer = new Thread(() =>
        {
            // A consumer on its own thread as a user would write it on a small box: poll (yielding) while messages
            // flow, then sleep on the subscription (woken directly by the dispatcher) once the stream stops.
            var handler = new LatencyHandler(histogram);
            var idle = 0;
            while (handler.Count < count)
            {
                if (sub.Fetch(1024, ref handler) > 0)
                {
                    idle = 0;
                }
                else if (++idle < 200)
                {
                    // ~50 µs of polling, yielding the core whenever another thread wants it: longer than the 10 µs
                    // between messages, so a steady stream is caught without a sleep/wake per message.
                    Thread.Yield();
                }
                else
                {
                    sub.Wait(TimeSpan.FromMilliseconds(100));
                }
            }
        })
        { Name = "bench-latency-sub", IsBackground = true };
        consumer.Start();

        Pace(broker, count, ratePerSecond);
        consumer.Join();
        return histogram.ValueAtPercentile(50);
    }

    private static double LatencyInline(FastBroker.Broker broker, int count, int ratePerSecond, LogLinearHistogram histogram)
    {
        var handler = new InlineLatencyHandler(histogram);
        using var sub = broker.SubscribeInline("bench", handler, new SubscriptionOptions { Start = StartPosition.Latest });
        Pace(broker, count, ratePerSecond);

        var deadline = Stopwatch.GetTimestamp() + (30 * Stopwatch.Frequency);
        while (Volatile.Read(ref handler.Count) < count && sub.Fault is null && Stopwatch.GetTimestamp() < deadline)
        {
            Thread.Sleep(1);
        }

        if (sub.Fault is { } fault || Volatile.Read(ref handler.Count) < count)
        {
            throw new InvalidOperationException($"inline subscription delivered {handler.Count} of {count}", sub.Fault);
        }

        return histogram.ValueAtPercentile(50);
    }

    /// <summary>
    /// The floor any in-process pipeline on this machine starts from: the same pacer, and a thread spinning on a
    /// published counter that records each timestamp's latency the moment it sees it. No broker, no journal.
    /// </summary>
    private static double LatencyFloor(int count, int ratePerSecond, LogLinearHistogram histogram)
    {
        var stamps = new long[count];
        var published = 0;
        var receiver = new Thread(() =>
        {
            var nsPerTick = 1e9 / Stopwatch.Frequency;
            var next = 0;
            while (next < count)
            {
                var available = Volatile.Read(ref published);
                if (available == next)
                {
                    Thread.SpinWait(8);
                    continue;
                }

                var now = Stopwatch.GetTimestamp();
                for (; next < available; next++)
                {
                    histogram.Record((long)((now - stamps[next]) * nsPerTick));
                }
            }
        })
        { Name = "bench-floor-receiver", IsBackground = true };
        receiver.Start();
        var i = 0;
        Pace(count, ratePerSecond, scheduled =>
        {
            stamps[i] = scheduled;
            Volatile.Write(ref published, ++i);
            return true;
        });
        receiver.Join();
        return histogram.ValueAtPercentile(50);
    }

    /// <summary>Publishes <paramref name="count"/> messages, each at its intended time, carrying that time.</summary>
    private static void Pace(FastBroker.Broker broker, int count, int ratePerSecond)
    {
        var payload = new byte[PayloadBytes];
        Pace(count, ratePerSecond, scheduled =>
        {
            BinaryPrimitives.WriteInt64LittleEndian(payload, scheduled);
            return broker.TryPublish("bench", payload);
        });
    }

    /// <summary>Calls <paramref name="send"/> (false = backpressure, retried) at each intended time, with that time.</summary>
    private static void Pace(int count, int ratePerSecond, Func<long, bool> send)
    {
        var intervalTicks = Stopwatch.Frequency / (double)ratePerSecond;
        var start = Stopwatch.GetTimestamp() + (Stopwatch.Frequency / 100);
        for (var i = 0; i < count; i++)
        {
            // The intended send time, not the actual one: a stalled sender still charges the stall to every message
            // it delayed (coordinated-omission correction).
            var scheduled = start + (long)(i * intervalTicks);
            while (Stopwatch.GetTimestamp() < scheduled)
            {
                // Yield, not spin: on 2 cores the pacing loop must leave room for the pipeline (and the consumer).
                Thread.Yield();
            }

            var spin = new SpinWait();
            while (!send(scheduled))
            {
                spin.SpinOnce(sleep1Threshold: -1);
            }
        }
    }

    /// <summary>Records latency from the pipeline thread (a class: the bench thread reads the count it advances).</summary>
    private sealed class InlineLatencyHandler(LogLinearHistogram histogram) : IMessageHandler
    {
        private static readonly double s_nsPerTick = 1e9 / Stopwatch.Frequency;

        public long Count;

        public void OnMessage(scoped in MessageView message)
        {
            var scheduled = BinaryPrimitives.ReadInt64LittleEndian(message.Payload);
            histogram.Record((long)((Stopwatch.GetTimestamp() - scheduled) * s_nsPerTick));
            Volatile.Write(ref Count, Count + 1);
        }
    }

    private struct CountingHandler : IMessageHandler
    {
        public long Count;

        public void OnMessage(scoped in MessageView message) => Count++;
    }

    private readonly struct AckingHandler(WorkQueueMember member) : IMessageHandler
    {
        public void OnMessage(scoped in MessageView message) => member.Ack(message.Offset, message.DeliveryCount);
    }

    private struct LatencyHandler(LogLinearHistogram histogram) : IMessageHandler
    {
        private static readonly double s_nsPerTick = 1e9 / Stopwatch.Frequency;

        public long Count;

        public void OnMessage(scoped in MessageView message)
        {
            var scheduled = BinaryPrimitives.ReadInt64LittleEndian(message.Payload);
            var latency = (long)((Stopwatch.GetTimestamp() - scheduled) * s_nsPerTick);
            // Measured from the intended send time, which already charges sender stalls to every delayed message;
            // back-filling on top (RecordCorrected) would count them twice.
            histogram.Record(latency);
            Count++;
        }
    }
}
