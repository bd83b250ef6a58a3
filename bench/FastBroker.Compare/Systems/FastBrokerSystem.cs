using FastBroker.Bench.EndToEnd;
using FastBroker.Bench.Infrastructure;
using FastBroker.Bench.Pair;
using FastBroker.Client;

namespace FastBroker.Compare.Systems;

/// <summary>
/// FastBroker as users run it: <c>fastbroker serve</c> as a child process (as <c>bench e2e</c> by default), driven
/// by <see cref="BrokerClient"/>; persistent topics, confirmations at <c>Written</c> (the default: in the page cache), or
/// at <c>Fsynced</c> for the "fastbroker-fsynced" system.
/// </summary>
internal sealed class FastBrokerSystem : IComparedSystem
{
    private readonly ServeChild _child;
    private readonly bool _fsynced;
    private readonly string _directory;
    private readonly Lock _stopLock = new();
    private bool _stopped;

    private FastBrokerSystem(ServeChild child, bool fsynced, string directory)
    {
        _child = child;
        _fsynced = fsynced;
        _directory = directory;
    }

    /// <summary>"fastbroker" (confirmed at <c>Written</c>), or "fastbroker-fsynced" (at <c>Fsynced</c>, the durability of RabbitMQ's confirms).</summary>
    public string Name => _fsynced ? "fastbroker-fsynced" : "fastbroker";

    /// <summary>host:port of the serve child.</summary>
    public string Endpoint => _child.Endpoint;

    /// <summary>Starts <c>fastbroker serve</c> from <paramref name="executable"/> (default: the fastbroker.dll next to this tool).</summary>
    /// <param name="workDirectory">Where the server's data directory goes (null: the temp directory).</param>
    /// <param name="fsynced">Serve with <c>--fsync</c>: topics are created <c>Fsynced</c>, so a publish is confirmed once
    /// fsync'd (group commit), as RabbitMQ confirms persistent messages; this system runs <c>publish</c> and
    /// <c>confirm-latency-10k</c> only.</param>
    /// <param name="executable">The fastbroker to serve (default: the fastbroker.dll next to this tool).</param>
    public static async Task<FastBrokerSystem> StartAsync(string? workDirectory, bool fsynced = false, FastBrokerExecutable? executable = null)
    {
        executable ??= FastBrokerExecutable.FromPath(Path.Combine(AppContext.BaseDirectory, "fastbroker.dll"));

        // Serve's data directory goes inside one named with this process's pid (its command line shows it), so that a
        // serve left by a kill -9 of this tool is reaped by the next start (Servers.Orphans).
        var directory = Servers.Orphans.NewDirectory(workDirectory, "fastbroker");

        // Until serve is up and registered, a signal kills whatever carries the directory (serve's --data names it).
        var starting = new object();
        Servers.ChildProcesses.Add(starting, () =>
        {
            Servers.Orphans.KillMarked(directory, null);
            Servers.ServerProcess.DeleteDirectory(directory);
        });
        ServeChild child;
        try
        {
            child = await ServeChild.StartAsync(executable, directory, fsynced ? ["--fsync"] : null).ConfigureAwait(false);
        }
        catch
        {
            Servers.ServerProcess.DeleteDirectory(directory);
            Servers.ChildProcesses.Remove(starting);
            throw;
        }

        var system = new FastBrokerSystem(child, fsynced, directory);
        Servers.ChildProcesses.Add(system, system.Stop);
        Servers.ChildProcesses.Remove(starting);
        return system;
    }

    public string Variant(string scenario) => $"{scenario}-{Name}";

    public bool Runs(string scenario) => !_fsynced || scenario != "fanout-3";

    public string Durability(string scenario) => _fsynced
        ? "persistent topic created Fsynced (serve --fsync), confirmed at Fsynced (fsync'd, group commit: survives a power loss)"
        : "persistent topic, confirmed at Written (page cache, survives kill -9 of the server)";

    public async Task<double> PublishAsync(int n, CancellationToken cancellationToken)
    {
        await using var publisher = await ConnectAsync(cancellationToken).ConfigureAwait(false);
        var topic = Topic("publish");
        var first = await publisher.PublishAsync(topic, new byte[Workloads.PayloadBytes], cancellationToken).ConfigureAwait(false) + 1;
        var (seconds, last, confirmed) = await PublishAllAsync(publisher, topic, n, cancellationToken).ConfigureAwait(false);
        Workloads.Check("fastbroker publish: confirmations", n, confirmed);
        Workloads.Check("fastbroker publish: offsets confirmed (last − first + 1)", n, last - first + 1);
        return n / seconds;
    }

    public async Task<double> FanoutAsync(int n, CancellationToken cancellationToken)
    {
        await using var publisher = await ConnectAsync(cancellationToken).ConfigureAwait(false);
        var topic = Topic("fanout-3");
        var first = await publisher.PublishAsync(topic, new byte[Workloads.PayloadBytes], cancellationToken).ConfigureAwait(false) + 1;
        var clients = new List<BrokerClient>();
        var counters = new List<CountingHandler.State>();
        try
        {
            for (var i = 0; i < 3; i++)
            {
                var c = await ConnectAsync(cancellationToken).ConfigureAwait(false);
                clients.Add(c);
                var state = new CountingHandler.State(n);
                counters.Add(state);
                await c.ConsumeAsync(topic, new CountingHandler(state), SubscribeOptions.Default with { Start = SubscribeStart.AtOffset(first), Credit = 8192 }, cancellationToken).ConfigureAwait(false);
            }

            var sw = System.Diagnostics.Stopwatch.StartNew();
            var (_, last, confirmed) = await PublishAllAsync(publisher, topic, n, cancellationToken).ConfigureAwait(false);
            await Workloads.WhenAllWithinDeadlineAsync([.. counters.Select(c => c.Done.Task)], () => string.Join(", ", counters.Select(c => c.Seen)), cancellationToken).ConfigureAwait(false);
            var seconds = sw.Elapsed.TotalSeconds;
            Workloads.Check("fastbroker fanout-3: confirmations", n, confirmed);
            Workloads.Check("fastbroker fanout-3: offsets confirmed", n, last - first + 1);
            foreach (var c in counters)
            {
                Workloads.Check("fastbroker fanout-3: messages at a subscriber", n, c.Seen);
            }

            return 3.0 * n / seconds;
        }
        finally
        {
            foreach (var c in clients)
            {
                await c.DisposeAsync().ConfigureAwait(false);
            }
        }
    }

    public async Task<double> ConfirmLatencyAsync(int count, int rate, LogLinearHistogram histogram, CancellationToken cancellationToken)
    {
        await using var client = await ConnectAsync(cancellationToken).ConfigureAwait(false);
        var topic = Topic("confirm-latency-10k");
        var first = await client.PublishAsync(topic, new byte[Workloads.PayloadBytes], cancellationToken).ConfigureAwait(false) + 1;
        long last = -1;
        var rateAchieved = await Workloads.PacedLatencyAsync(count, rate, histogram, async payload =>
        {
            var offset = await client.PublishAsync(topic, payload, cancellationToken).ConfigureAwait(false);
            InterlockedMax(ref last, offset);
        }, cancellationToken).ConfigureAwait(false);
        Workloads.Check("fastbroker confirm-latency: offsets confirmed", count, Volatile.Read(ref last) - first + 1);
        return rateAchieved;
    }

    public ValueTask DisposeAsync()
    {
        Stop();
        return ValueTask.CompletedTask;
    }

    /// <summary>Kills serve and deletes its directory; a second caller (a signal handler) waits until that is done.</summary>
    private void Stop()
    {
        lock (_stopLock)
        {
            if (_stopped)
            {
                return;
            }

            _child.DisposeAsync().AsTask().GetAwaiter().GetResult();
            Servers.ServerProcess.DeleteDirectory(_directory);
            _stopped = true;
            Servers.ChildProcesses.Remove(this);
        }
    }

    private static void InterlockedMax(ref long target, long value)
    {
        var current = Volatile.Read(ref target);
        while (value > current)
        {
            var seen = Interlocked.CompareExchange(ref target, value, current);
            if (seen == current)
            {
                return;
            }

            current = seen;
        }
    }

    private static async Task<(double Seconds, long Last, long Confirmed)> PublishAllAsync(BrokerClient publisher, string topic, int n, CancellationToken cancellationToken)
    {
        var payload = new byte[Workloads.PayloadBytes];
        long last = -1;
        long confirmed = 0;
        var sw = System.Diagnostics.Stopwatch.StartNew();
        await Workloads.PipelinedAsync(n, _ => publisher.PublishAsync(topic, payload, cancellationToken), offset =>
        {
            last = Math.Max(last, offset);
            confirmed++;
        }, cancellationToken).ConfigureAwait(false);
        return (sw.Elapsed.TotalSeconds, last, confirmed);
    }

    // One topic per scenario, reused across runs (as bench e2e: a new topic costs a segment pre-allocation, which is
    // not what these scenarios measure); each run counts from its own first offset.
    private string Topic(string scenario) => $"compare.{scenario}.{Environment.ProcessId}";

    private ValueTask<BrokerClient> ConnectAsync(CancellationToken cancellationToken) =>
        BrokerClient.ConnectAsync(BrokerClientOptions.Default with { Endpoints = [_child.Endpoint], ClientName = "fastbroker-compare", Reconnect = false }, cancellationToken);

    /// <summary>Counts deliveries on the client's reader loop (no copy) and completes at the expected count.</summary>
    private readonly struct CountingHandler(CountingHandler.State state) : IClientMessageHandler
    {
        public void OnMessage(scoped in ClientMessageView message)
        {
            var seen = state.Seen + 1;
            Volatile.Write(ref state.Seen, seen);
            if (seen == state.Expected)
            {
                state.Done.TrySetResult();
            }
        }

        public sealed class State(int expected)
        {
            public readonly int Expected = expected;
            public int Seen;

            public TaskCompletionSource Done { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);
        }
    }
}
