using System.Diagnostics;
using System.Threading.Channels;
using FastBroker.Bench.Infrastructure;

namespace FastBroker.Bench.Ring;

/// <summary>
/// The same-run baselines for <see cref="RingScenarios"/>: bounded <see cref="Channel"/>s of the same capacity
/// (<see cref="RingScenarios.RingSize"/>) carrying the same <see cref="RingPayload"/>, written the way the
/// Channels documentation recommends (TryWrite/TryRead fast paths, WaitToWrite/WaitToRead when full/empty).
/// Each returns the elapsed seconds from the first write until every reader has read the last message.
/// </summary>
public static class ChannelScenarios
{
    /// <summary>1 writer, 1 reader.</summary>
    public static double OneToOne(long messages) => Run(messages, writers: 1, fanOut: 1, readersPerChannel: 1);

    /// <summary>3 writers (messages/3 each), 1 reader.</summary>
    public static double ThreeToOne(long messages) => Run(messages, writers: 3, fanOut: 1, readersPerChannel: 1);

    /// <summary>1 writer writing every message to 3 channels, one reader each.</summary>
    public static double OneToThreeFanOut(long messages) => Run(messages, writers: 1, fanOut: 3, readersPerChannel: 1);

    /// <summary>1 writer, 3 readers competing on one channel (each message read once).</summary>
    public static double OneToThreeWorkers(long messages) => Run(messages, writers: 1, fanOut: 1, readersPerChannel: 3);

    /// <summary>
    /// Round trips over two bounded channels between the calling thread and a dedicated echo thread, both
    /// busy-polling <c>TryRead</c> as the ring's ping-pong busy-spins, so both sides cross cores the same way
    /// (an async version lets the thread pool run both ends on one thread, which measures no hand-off at all).
    /// Each round trip's time goes into <paramref name="histogram"/> (ns).
    /// </summary>
    public static double PingPong(int roundTrips, LogLinearHistogram? histogram)
    {
        var options = new BoundedChannelOptions(1024) { SingleReader = true, SingleWriter = true };
        var ping = Channel.CreateBounded<RingPayload>(options);
        var pong = Channel.CreateBounded<RingPayload>(options);
        var echo = new Thread(() =>
        {
            var reader = ping.Reader;
            var writer = pong.Writer;
            while (true)
            {
                if (reader.TryRead(out var p))
                {
                    if (p.Value < 0)
                    {
                        return;
                    }

                    while (!writer.TryWrite(p))
                    {
                        Thread.SpinWait(1);
                    }
                }
                else
                {
                    Thread.SpinWait(1);
                }
            }
        })
        { IsBackground = true, Name = "bench-channel-echo" };
        echo.Start();

        var nsPerTick = 1e9 / Stopwatch.Frequency;
        var start = Stopwatch.GetTimestamp();
        for (var i = 0; i < roundTrips; i++)
        {
            var t0 = Stopwatch.GetTimestamp();
            while (!ping.Writer.TryWrite(new RingPayload { Value = i, Timestamp = t0 }))
            {
                Thread.SpinWait(1);
            }

            RingPayload reply;
            while (!pong.Reader.TryRead(out reply))
            {
                Thread.SpinWait(1);
            }

            histogram?.Record((long)((Stopwatch.GetTimestamp() - t0) * nsPerTick));
        }

        var elapsed = Stopwatch.GetElapsedTime(start).TotalSeconds;
        ping.Writer.TryWrite(new RingPayload { Value = -1 });
        echo.Join();
        return elapsed;
    }

    private static double Run(long messages, int writers, int fanOut, int readersPerChannel)
    {
        var options = new BoundedChannelOptions(RingScenarios.RingSize)
        {
            SingleWriter = writers == 1,
            SingleReader = readersPerChannel == 1,
            FullMode = BoundedChannelFullMode.Wait,
        };
        var channels = new Channel<RingPayload>[fanOut];
        for (var i = 0; i < fanOut; i++)
        {
            channels[i] = Channel.CreateBounded<RingPayload>(options);
        }

        var perWriter = messages / writers;
        using var go = new ManualResetEventSlim(false);
        var readers = new List<Task>();
        foreach (var channel in channels)
        {
            for (var r = 0; r < readersPerChannel; r++)
            {
                var reader = channel.Reader;
                readers.Add(Task.Run(() => ReadAllAsync(reader)));
            }
        }

        var writerTasks = new Task[writers];
        for (var w = 0; w < writers; w++)
        {
            writerTasks[w] = Task.Run(async () =>
            {
                go.Wait();
                await WriteAsync(channels, perWriter).ConfigureAwait(false);
            });
        }

        var start = Stopwatch.GetTimestamp();
        go.Set();
        Task.WaitAll(writerTasks);
        foreach (var c in channels)
        {
            c.Writer.Complete();
        }

        Task.WaitAll([.. readers]);
        return Stopwatch.GetElapsedTime(start).TotalSeconds;
    }

    private static async Task WriteAsync(Channel<RingPayload>[] channels, long count)
    {
        var payload = default(RingPayload);
        for (long i = 0; i < count; i++)
        {
            payload.Value = i;
            foreach (var channel in channels)
            {
                var writer = channel.Writer;
                while (!writer.TryWrite(payload))
                {
                    await writer.WaitToWriteAsync().ConfigureAwait(false);
                }
            }
        }
    }

    private static async Task<long> ReadAllAsync(ChannelReader<RingPayload> reader)
    {
        long sum = 0;
        while (await reader.WaitToReadAsync().ConfigureAwait(false))
        {
            while (reader.TryRead(out var item))
            {
                sum += item.Value;
            }
        }

        return sum;
    }
}
