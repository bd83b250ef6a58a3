using System.Diagnostics;
using FastBroker.Bench.Infrastructure;
using FastBroker.Compare.Servers;
using RabbitMQ.Client;
using RabbitMQ.Client.Events;

namespace FastBroker.Compare.Systems;

/// <summary>
/// RabbitMQ through RabbitMQ.Client 7: durable queues, persistent messages (delivery mode 2), publisher confirms with
/// tracking (each <c>BasicPublishAsync</c> completes at its confirm; the client's own limit of 128 outstanding is
/// off, the 4,096 window is the workload's). Fan-out: a fanout exchange to 3 durable queues, one consumer connection
/// per queue, prefetch 2,000, acked in batches of 500 (<c>multiple</c>). Queues are per run, deleted after it.
/// </summary>
internal sealed class RabbitMqSystem : IComparedSystem
{
    private const ushort Prefetch = 2_000;
    private const int AckEvery = 500;

    private static readonly BasicProperties s_persistent = new() { Persistent = true };

    private readonly ServerProcess _server;
    private int _run;

    private RabbitMqSystem(ServerProcess server) => _server = server;

    public string Name => "rabbitmq";

    /// <summary>The RabbitMQ node's child (its start script).</summary>
    public ServerProcess Server => _server;

    public static async Task<RabbitMqSystem> StartAsync(string? workDirectory, CancellationToken cancellationToken = default) =>
        new(await Competitors.StartRabbitMqAsync(workDirectory, cancellationToken).ConfigureAwait(false));

    public string Variant(string scenario) => $"{scenario}-rabbitmq";

    public string Durability(string scenario) => scenario == "fanout-3"
        ? "durable queues, persistent messages, publisher confirms; consumers prefetch 2,000, batched acks (multiple, every 500)"
        : "durable queue, persistent messages (delivery mode 2), publisher confirms";

    public async Task<double> PublishAsync(int n, CancellationToken cancellationToken)
    {
        await using var connection = await ConnectAsync(cancellationToken).ConfigureAwait(false);
        await using var channel = await PublisherChannelAsync(connection, cancellationToken).ConfigureAwait(false);
        var queue = NewName("publish");
        await channel.QueueDeclareAsync(queue, durable: true, exclusive: false, autoDelete: false, cancellationToken: cancellationToken).ConfigureAwait(false);
        try
        {
            var sw = Stopwatch.StartNew();
            var confirmed = await PublishAllAsync(channel, "", queue, n, cancellationToken).ConfigureAwait(false);
            var seconds = sw.Elapsed.TotalSeconds;
            Workloads.Check("rabbitmq publish: confirms", n, confirmed);
            var ok = await channel.QueueDeclarePassiveAsync(queue, cancellationToken).ConfigureAwait(false);
            Workloads.Check("rabbitmq publish: messages in the queue", n, ok.MessageCount);
            return n / seconds;
        }
        finally
        {
            await channel.QueueDeleteAsync(queue, cancellationToken: CancellationToken.None).ConfigureAwait(false);
        }
    }

    public async Task<double> FanoutAsync(int n, CancellationToken cancellationToken)
    {
        await using var connection = await ConnectAsync(cancellationToken).ConfigureAwait(false);
        await using var channel = await PublisherChannelAsync(connection, cancellationToken).ConfigureAwait(false);
        var exchange = NewName("fanout-3");
        var queues = Enumerable.Range(0, 3).Select(i => $"{exchange}.{i}").ToArray();
        await channel.ExchangeDeclareAsync(exchange, ExchangeType.Fanout, durable: true, autoDelete: false, cancellationToken: cancellationToken).ConfigureAwait(false);
        foreach (var q in queues)
        {
            await channel.QueueDeclareAsync(q, durable: true, exclusive: false, autoDelete: false, cancellationToken: cancellationToken).ConfigureAwait(false);
            await channel.QueueBindAsync(q, exchange, "", cancellationToken: cancellationToken).ConfigureAwait(false);
        }

        var consumers = new List<(IConnection Connection, IChannel Channel)>();
        var seen = new long[3];
        try
        {
            var done = new List<Task>();
            for (var i = 0; i < 3; i++)
            {
                var c = await ConnectAsync(cancellationToken).ConfigureAwait(false);
                var ch = await c.CreateChannelAsync(cancellationToken: cancellationToken).ConfigureAwait(false);
                consumers.Add((c, ch));
                await ch.BasicQosAsync(0, Prefetch, global: false, cancellationToken).ConfigureAwait(false);
                done.Add(Consume(ch, queues[i], n, i, seen, cancellationToken));
            }

            var sw = Stopwatch.StartNew();
            var confirmed = await PublishAllAsync(channel, exchange, "", n, cancellationToken).ConfigureAwait(false);
            await Workloads.WhenAllWithinDeadlineAsync(done, () => string.Join(", ", seen), cancellationToken).ConfigureAwait(false);
            var seconds = sw.Elapsed.TotalSeconds;
            Workloads.Check("rabbitmq fanout-3: confirms", n, confirmed);
            for (var i = 0; i < 3; i++)
            {
                Workloads.Check("rabbitmq fanout-3: messages at a consumer", n, Interlocked.Read(ref seen[i]));
            }

            return 3.0 * n / seconds;
        }
        finally
        {
            foreach (var (c, ch) in consumers)
            {
                await ch.DisposeAsync().ConfigureAwait(false);
                await c.DisposeAsync().ConfigureAwait(false);
            }

            foreach (var q in queues)
            {
                await channel.QueueDeleteAsync(q, cancellationToken: CancellationToken.None).ConfigureAwait(false);
            }

            await channel.ExchangeDeleteAsync(exchange, cancellationToken: CancellationToken.None).ConfigureAwait(false);
        }
    }

    public async Task<double> ConfirmLatencyAsync(int count, int rate, LogLinearHistogram histogram, CancellationToken cancellationToken)
    {
        await using var connection = await ConnectAsync(cancellationToken).ConfigureAwait(false);
        await using var channel = await PublisherChannelAsync(connection, cancellationToken).ConfigureAwait(false);
        var queue = NewName("confirm-latency-10k");
        await channel.QueueDeclareAsync(queue, durable: true, exclusive: false, autoDelete: false, cancellationToken: cancellationToken).ConfigureAwait(false);
        try
        {
            var achieved = await Workloads.PacedLatencyAsync(count, rate, histogram, payload => channel.BasicPublishAsync("", queue, mandatory: false, s_persistent, payload, cancellationToken).AsTask(), cancellationToken).ConfigureAwait(false);
            var ok = await channel.QueueDeclarePassiveAsync(queue, cancellationToken).ConfigureAwait(false);
            Workloads.Check("rabbitmq confirm-latency: messages in the queue", count, ok.MessageCount);
            return achieved;
        }
        finally
        {
            await channel.QueueDeleteAsync(queue, cancellationToken: CancellationToken.None).ConfigureAwait(false);
        }
    }

    public ValueTask DisposeAsync() => _server.DisposeAsync();

    private static async Task<long> PublishAllAsync(IChannel channel, string exchange, string routingKey, int n, CancellationToken cancellationToken)
    {
        var payload = new byte[Workloads.PayloadBytes];
        long confirmed = 0;
        await Workloads.PipelinedAsync(n, _ => Confirmed(channel.BasicPublishAsync(exchange, routingKey, mandatory: false, s_persistent, payload, cancellationToken)), _ => confirmed++, cancellationToken).ConfigureAwait(false);
        return confirmed;

        // A nack or a closed channel throws from the publish's task.
        static async ValueTask<bool> Confirmed(ValueTask publish)
        {
            await publish.ConfigureAwait(false);
            return true;
        }
    }

    /// <summary>One consumer on its own connection: counts, acks every 500th (multiple) and the last, completes at <paramref name="n"/>.</summary>
    private static Task Consume(IChannel channel, string queue, int n, int index, long[] seen, CancellationToken cancellationToken)
    {
        var done = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var consumer = new AsyncEventingBasicConsumer(channel);
        long count = 0;
        consumer.ReceivedAsync += async (_, e) =>
        {
            if (e.Body.Length != Workloads.PayloadBytes)
            {
                done.TrySetException(new InvalidOperationException("rabbitmq fanout-3: a message without its 100-byte payload"));
                return;
            }

            count++;
            Interlocked.Exchange(ref seen[index], count);
            if (count % AckEvery == 0 || count == n)
            {
                await channel.BasicAckAsync(e.DeliveryTag, multiple: true, cancellationToken).ConfigureAwait(false);
            }

            if (count == n)
            {
                done.TrySetResult();
            }
        };
        return StartAsync();

        async Task StartAsync()
        {
            await channel.BasicConsumeAsync(queue, autoAck: false, consumer, cancellationToken).ConfigureAwait(false);
            await done.Task.ConfigureAwait(false);
        }
    }

    private static Task<IChannel> PublisherChannelAsync(IConnection connection, CancellationToken cancellationToken) =>
        connection.CreateChannelAsync(new CreateChannelOptions(publisherConfirmationsEnabled: true, publisherConfirmationTrackingEnabled: true, outstandingPublisherConfirmationsRateLimiter: null), cancellationToken);

    private Task<IConnection> ConnectAsync(CancellationToken cancellationToken) =>
        new ConnectionFactory { HostName = "127.0.0.1", Port = _server.Port, ClientProvidedName = "fastbroker-compare" }.CreateConnectionAsync(cancellationToken);

    private string NewName(string scenario) => $"compare.{scenario}.{Environment.ProcessId}.{Interlocked.Increment(ref _run)}";
}
