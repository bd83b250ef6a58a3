using System.Diagnostics;
using FastBroker.Bench.Infrastructure;
using FastBroker.Compare.Servers;
using StackExchange.Redis;

namespace FastBroker.Compare.Systems;

/// <summary>
/// Redis Streams through StackExchange.Redis: XADD (its reply is the confirmation: the entry is in memory and, with
/// <c>--appendonly yes --appendfsync no</c>, in the AOF written to the page cache by the end of that event loop),
/// XREAD BLOCK for the fan-out readers. A fresh stream key per run, deleted after it.
/// </summary>
internal sealed class RedisSystem : IComparedSystem
{
    private readonly ServerProcess _server;
    private int _run;

    private RedisSystem(ServerProcess server) => _server = server;

    public string Name => "redis";

    /// <summary>The redis-server child.</summary>
    public ServerProcess Server => _server;

    public static async Task<RedisSystem> StartAsync(string? workDirectory, CancellationToken cancellationToken = default) =>
        new(await Competitors.StartRedisAsync(workDirectory, cancellationToken).ConfigureAwait(false));

    public string Variant(string scenario) => $"{scenario}-redis";

    public string Durability(string scenario) => "stream XADD, reply = confirmation; appendonly yes, appendfsync no (AOF written each event loop: page cache), no RDB";

    public async Task<double> PublishAsync(int n, CancellationToken cancellationToken)
    {
        await using var mux = await ConnectAsync().ConfigureAwait(false);
        var db = mux.GetDatabase();
        var key = NewKey("publish");
        try
        {
            var sw = Stopwatch.StartNew();
            var confirmed = await AddAllAsync(db, key, n, cancellationToken).ConfigureAwait(false);
            var seconds = sw.Elapsed.TotalSeconds;
            Workloads.Check("redis publish: XADD replies", n, confirmed);
            Workloads.Check("redis publish: XLEN", n, await db.StreamLengthAsync(key).ConfigureAwait(false));
            return n / seconds;
        }
        finally
        {
            await db.KeyDeleteAsync(key).ConfigureAwait(false);
        }
    }

    public async Task<double> FanoutAsync(int n, CancellationToken cancellationToken)
    {
        await using var mux = await ConnectAsync().ConfigureAwait(false);
        var db = mux.GetDatabase();
        var key = NewKey("fanout-3");
        var readers = new List<ConnectionMultiplexer>();
        var seen = new long[3];
        using var stop = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        try
        {
            for (var i = 0; i < 3; i++)
            {
                readers.Add(await ConnectAsync().ConfigureAwait(false));
            }

            var sw = Stopwatch.StartNew();
            var tasks = readers.Select((r, i) => Task.Run(() => ReadAllAsync(r.GetDatabase(), key, n, i, seen, stop.Token))).ToList();
            var confirmed = await AddAllAsync(db, key, n, cancellationToken).ConfigureAwait(false);
            await Workloads.WhenAllWithinDeadlineAsync(tasks, () => string.Join(", ", seen), cancellationToken).ConfigureAwait(false);
            var seconds = sw.Elapsed.TotalSeconds;
            Workloads.Check("redis fanout-3: XADD replies", n, confirmed);
            for (var i = 0; i < 3; i++)
            {
                Workloads.Check("redis fanout-3: entries read by a reader", n, Interlocked.Read(ref seen[i]));
            }

            return 3.0 * n / seconds;
        }
        finally
        {
            await stop.CancelAsync().ConfigureAwait(false);
            foreach (var r in readers)
            {
                await r.DisposeAsync().ConfigureAwait(false);
            }

            await db.KeyDeleteAsync(key).ConfigureAwait(false);
        }
    }

    public async Task<double> ConfirmLatencyAsync(int count, int rate, LogLinearHistogram histogram, CancellationToken cancellationToken)
    {
        await using var mux = await ConnectAsync().ConfigureAwait(false);
        var db = mux.GetDatabase();
        var key = NewKey("confirm-latency-10k");
        try
        {
            var achieved = await Workloads.PacedLatencyAsync(count, rate, histogram, payload => db.StreamAddAsync(key, "d", payload), cancellationToken).ConfigureAwait(false);
            Workloads.Check("redis confirm-latency: XLEN", count, await db.StreamLengthAsync(key).ConfigureAwait(false));
            return achieved;
        }
        finally
        {
            await db.KeyDeleteAsync(key).ConfigureAwait(false);
        }
    }

    public ValueTask DisposeAsync() => _server.DisposeAsync();

    private static async Task<long> AddAllAsync(IDatabase db, RedisKey key, int n, CancellationToken cancellationToken)
    {
        var payload = new byte[Workloads.PayloadBytes];
        long confirmed = 0;
        await Workloads.PipelinedAsync(n, _ => new ValueTask<RedisValue>(db.StreamAddAsync(key, "d", payload)), id =>
        {
            if (id.IsNull)
            {
                throw new InvalidOperationException("redis XADD returned no id");
            }

            confirmed++;
        }, cancellationToken).ConfigureAwait(false);
        return confirmed;
    }

    /// <summary>
    /// One reader connection: XREAD COUNT 1000 BLOCK 1000 from the start id until it has <paramref name="n"/> entries.
    /// Through <c>ExecuteAsync</c> (StackExchange.Redis has no blocking XREAD), on a multiplexer of its own, so the
    /// block holds up nothing else.
    /// </summary>
    private static async Task ReadAllAsync(IDatabase db, RedisKey key, int n, int index, long[] seen, CancellationToken cancellationToken)
    {
        var last = "0-0";
        long count = 0;
        while (count < n)
        {
            cancellationToken.ThrowIfCancellationRequested();
            var reply = await db.ExecuteAsync("XREAD", "COUNT", 1000, "BLOCK", 1000, "STREAMS", key, last).ConfigureAwait(false);
            if (reply.IsNull)
            {
                continue;
            }

            // [[key, [[id, [field, value]], ...]]]
            var streams = (RedisResult[])reply!;
            foreach (var stream in streams)
            {
                var entries = (RedisResult[])((RedisResult[])stream!)[1]!;
                foreach (var entry in entries)
                {
                    var fields = (RedisResult[])((RedisResult[])entry!)[1]!;
                    if (fields.Length != 2 || ((byte[])fields[1]!).Length != Workloads.PayloadBytes)
                    {
                        throw new InvalidOperationException("redis fanout-3: an entry without its 100-byte payload");
                    }
                }

                if (entries.Length > 0)
                {
                    last = (string)((RedisResult[])entries[^1]!)[0]!;
                    count += entries.Length;
                    Interlocked.Exchange(ref seen[index], count);
                }
            }
        }
    }

    private Task<ConnectionMultiplexer> ConnectAsync() =>
        ConnectionMultiplexer.ConnectAsync(new ConfigurationOptions
        {
            EndPoints = { { "127.0.0.1", _server.Port } },
            AbortOnConnectFail = true,
            ConnectTimeout = 10_000,
            AsyncTimeout = 60_000,
            SyncTimeout = 60_000,
            ClientName = "fastbroker-compare",
        });

    private RedisKey NewKey(string scenario) => $"compare:{scenario}:{Environment.ProcessId}:{Interlocked.Increment(ref _run)}";
}
