using System.Diagnostics;
using System.Threading.Channels;
using FastBroker.Bench.Infrastructure;
using FastBroker.Compare.Servers;
using NATS.Client.Core;
using NATS.Client.JetStream;
using NATS.Client.JetStream.Models;

namespace FastBroker.Compare.Systems;

/// <summary>
/// NATS through NATS.Net (NATS.Client.Core / NATS.Client.JetStream): JetStream file storage for the persistent
/// scenarios (publish acks: the message is in the stream's file, default sync = page cache), NATS core for fan-out
/// (no persistence, as the issue quotes it). One stream over <c>compare.&gt;</c>, a subject per run, purged after it.
/// </summary>
internal sealed class NatsSystem : IComparedSystem
{
    private const string StreamName = "COMPARE";

    private readonly ServerProcess _server;
    private int _run;

    private NatsSystem(ServerProcess server) => _server = server;

    public string Name => "nats";

    /// <summary>The nats-server child.</summary>
    public ServerProcess Server => _server;

    public static async Task<NatsSystem> StartAsync(string? workDirectory, CancellationToken cancellationToken = default)
    {
        var server = await Competitors.StartNatsAsync(workDirectory, cancellationToken).ConfigureAwait(false);
        var system = new NatsSystem(server);
        try
        {
            await using var nats = system.Connect();
            var js = new NatsJSContext(nats);
            await js.CreateStreamAsync(new StreamConfig(StreamName, ["compare.>"]) { Storage = StreamConfigStorage.File }, cancellationToken).ConfigureAwait(false);
            return system;
        }
        catch
        {
            await server.DisposeAsync().ConfigureAwait(false);
            throw;
        }
    }

    public string Variant(string scenario) => scenario == "fanout-3" ? $"{scenario}-nats-core" : $"{scenario}-nats-jetstream";

    public string Durability(string scenario) => scenario == "fanout-3"
        ? "NATS core: no persistence, publisher flushes (PING/PONG), subscribers buffer (Wait, server max_pending 1 GiB)"
        : "JetStream file storage, publish ack = confirmation (default sync: page cache)";

    public async Task<double> PublishAsync(int n, CancellationToken cancellationToken)
    {
        await using var nats = Connect();
        var js = new NatsJSContext(nats);
        var subject = NewSubject("publish");
        var before = await StreamMessagesAsync(js, cancellationToken).ConfigureAwait(false);
        var payload = new byte[Workloads.PayloadBytes];
        long confirmed = 0;
        var sw = Stopwatch.StartNew();
        await Workloads.PipelinedAsync(n, _ => js.PublishAsync(subject, payload, cancellationToken: cancellationToken), ack =>
        {
            ack.EnsureSuccess();
            confirmed++;
        }, cancellationToken).ConfigureAwait(false);
        var seconds = sw.Elapsed.TotalSeconds;
        Workloads.Check("nats publish: JetStream acks", n, confirmed);
        Workloads.Check("nats publish: messages added to the stream", n, await StreamMessagesAsync(js, cancellationToken).ConfigureAwait(false) - before);
        await js.PurgeStreamAsync(StreamName, new StreamPurgeRequest(), cancellationToken).ConfigureAwait(false);
        return n / seconds;
    }

    public async Task<double> FanoutAsync(int n, CancellationToken cancellationToken)
    {
        await using var publisher = Connect();
        var subject = NewSubject("fanout-3");
        var subscribers = new List<NatsConnection>();
        var subs = new List<INatsSub<byte[]>>();
        var seen = new long[3];
        try
        {
            for (var i = 0; i < 3; i++)
            {
                var c = Connect();
                subscribers.Add(c);
                subs.Add(await c.SubscribeCoreAsync<byte[]>(subject, cancellationToken: cancellationToken).ConfigureAwait(false));

                // The server has the SUB once it answers a PING sent after it.
                await c.PingAsync(cancellationToken).ConfigureAwait(false);
            }

            await publisher.ConnectAsync().ConfigureAwait(false);
            var sw = Stopwatch.StartNew();
            var tasks = subs.Select((s, i) => Task.Run(() => CountAsync(s, n, i, seen, cancellationToken))).ToList();
            var payload = new byte[Workloads.PayloadBytes];
            for (var i = 0; i < n; i++)
            {
                await publisher.PublishAsync(subject, payload, cancellationToken: cancellationToken).ConfigureAwait(false);
            }

            await publisher.PingAsync(cancellationToken).ConfigureAwait(false);
            await Workloads.WhenAllWithinDeadlineAsync(tasks, () => string.Join(", ", seen), cancellationToken).ConfigureAwait(false);
            var seconds = sw.Elapsed.TotalSeconds;
            for (var i = 0; i < 3; i++)
            {
                Workloads.Check("nats fanout-3: messages at a subscriber", n, Interlocked.Read(ref seen[i]));
            }

            return 3.0 * n / seconds;
        }
        finally
        {
            foreach (var s in subs)
            {
                await s.DisposeAsync().ConfigureAwait(false);
            }

            foreach (var c in subscribers)
            {
                await c.DisposeAsync().ConfigureAwait(false);
            }
        }
    }

    public async Task<double> ConfirmLatencyAsync(int count, int rate, LogLinearHistogram histogram, CancellationToken cancellationToken)
    {
        await using var nats = Connect();
        var js = new NatsJSContext(nats);
        var subject = NewSubject("confirm-latency-10k");
        var before = await StreamMessagesAsync(js, cancellationToken).ConfigureAwait(false);
        var achieved = await Workloads.PacedLatencyAsync(count, rate, histogram, async payload =>
        {
            var ack = await js.PublishAsync(subject, payload, cancellationToken: cancellationToken).ConfigureAwait(false);
            ack.EnsureSuccess();
        }, cancellationToken).ConfigureAwait(false);
        Workloads.Check("nats confirm-latency: messages added to the stream", count, await StreamMessagesAsync(js, cancellationToken).ConfigureAwait(false) - before);
        await js.PurgeStreamAsync(StreamName, new StreamPurgeRequest(), cancellationToken).ConfigureAwait(false);
        return achieved;
    }

    public ValueTask DisposeAsync() => _server.DisposeAsync();

    private static async Task CountAsync(INatsSub<byte[]> sub, int n, int index, long[] seen, CancellationToken cancellationToken)
    {
        long count = 0;
        await foreach (var msg in sub.Msgs.ReadAllAsync(cancellationToken).ConfigureAwait(false))
        {
            if (msg.Data is not { Length: Workloads.PayloadBytes })
            {
                throw new InvalidOperationException("nats fanout-3: a message without its 100-byte payload");
            }

            Interlocked.Exchange(ref seen[index], ++count);
            if (count == n)
            {
                return;
            }
        }
    }

    private static async Task<long> StreamMessagesAsync(NatsJSContext js, CancellationToken cancellationToken)
    {
        var stream = await js.GetStreamAsync(StreamName, cancellationToken: cancellationToken).ConfigureAwait(false);
        return (long)stream.Info.State.Messages;
    }

    private NatsConnection Connect() => new(NatsOpts.Default with
    {
        Url = $"nats://127.0.0.1:{_server.Port}",
        Name = "fastbroker-compare",

        // Deliveries wait for the reader instead of being dropped (the default drops the newest past 1,024): a
        // fan-out subscriber must get every message, and the server's 1 GiB max_pending holds what it is behind.
        SubPendingChannelFullMode = BoundedChannelFullMode.Wait,
        SubPendingChannelCapacity = 65_536,
        RequestTimeout = TimeSpan.FromSeconds(60),
        CommandTimeout = TimeSpan.FromSeconds(60),
    });

    private string NewSubject(string scenario) => $"compare.{scenario}.{Interlocked.Increment(ref _run)}";
}
