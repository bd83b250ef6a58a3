using System.Diagnostics;
using FastBroker.Bench.Infrastructure;
using FastBroker.Bench.Pair;
using FastBroker.Client;

namespace FastBroker.Bench.Failover;

/// <summary>
/// `fastbroker bench failover`: a witness and a pair as child processes, one client (given both nodes) publishing
/// numbered 100-byte payloads at a fixed rate with <see cref="FastBroker.Protocol.Durability.StandbyDurable"/>; each
/// round SIGKILLs the primary at a random moment, measures how long until the new primary confirms, restarts the
/// killed node and waits until it has rejoined as standby and caught up. At the end the whole topic is read back from the primary:
/// every confirmed payload must be there (<c>lost</c>) and none twice (<c>duplicated</c>).
/// </summary>
/// <remarks>
/// <para>
/// The failover time of a round is from just before the kill to the first confirmation of a publish that was
/// <em>issued</em> after the killed process had been reaped. Such a publish cannot have been confirmed by the old
/// primary (it no longer existed), and confirmations complete in publish order, so this is the moment writes are
/// accepted and confirmed again: detection (heartbeat timeout 500 ms), the old lease running out (TTL 1 s),
/// promotion, and the client's reconnect and resend. A confirmation merely completing after the kill would not do: the old
/// primary's last CONFIRMs may still sit unread in the client's socket. Resolution: the publish interval
/// (0.5 ms at 2,000 msg/s) plus the client's reconnect backoff (5 ms doubling to at most 100 ms).
/// </para>
/// <para>
/// The nodes run with <c>--degrade-to-local</c>: between the kill and the killed node's return the new primary has
/// no standby, and a standby-durable confirmation would otherwise wait for one (and fail after the ack timeout),
/// so "failover" would include restarting the dead node. A round starts only once the rejoined standby has
/// flushed everything the primary held when it attached and the witness records it in sync again, so a degraded
/// (local) confirmation is never at risk from the next kill, and <c>lost</c> counts only real losses. (Were the
/// pair to change roles on its own, a loaded machine stalling a node past the heartbeat timeout, the witness would
/// not promote a standby that lacks degraded confirmations.)
/// </para>
/// </remarks>
public static class FailoverBenchmark
{
    private static readonly TimeSpan s_stepTimeout = TimeSpan.FromSeconds(30);
    private static readonly PublishOptions s_standbyDurable = PublishOptions.Default with { Durability = FastBroker.Protocol.Durability.StandbyDurable };

    /// <summary>Runs the benchmark and reports one result line.</summary>
    public static FailoverSummary Run(BenchContext ctx, FailoverOptions options) => RunAsync(ctx, options, CancellationToken.None).GetAwaiter().GetResult();

    /// <summary>Runs the benchmark and reports one result line.</summary>
    public static async Task<FailoverSummary> RunAsync(BenchContext ctx, FailoverOptions options, CancellationToken cancellationToken)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(options.Rounds, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(options.Rate, 1);
        ctx.WarmUpMachine();
        ctx.Reporter.Info($"failover pair on 127.0.0.1: witness + nodes a and b as child processes of {options.Executable} (same {Environment.ProcessorCount} cores), heartbeat timeout {options.HeartbeatTimeoutMs} ms, --degrade-to-local; one client publishing {options.Rate:N0} msg/s standby-durable, {options.Rounds} primary kill(s) (SIGKILL), each after {options.MinKillDelay.TotalSeconds:0.#}-{options.MaxKillDelay.TotalSeconds:0.#} s of steady publishing");
        ctx.Reporter.Progress("starting the pair", 0);
        await using var pair = await LocalPair.StartAsync(options.Executable, ctx.WorkDirectory, ["--degrade-to-local"], cancellationToken, options.HeartbeatTimeoutMs).ConfigureAwait(false);
        try
        {
            return await MeasureAsync(ctx, options, pair, cancellationToken).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is not OperationCanceledException)
        {
            throw await pair.WithDiagnosticsAsync(ex).ConfigureAwait(false);
        }
    }

    private static async Task<FailoverSummary> MeasureAsync(BenchContext ctx, FailoverOptions options, LocalPair pair, CancellationToken cancellationToken)
    {
        var (primary, _) = await pair.WaitForAttachedPairAsync(TimeSpan.FromSeconds(60), cancellationToken).ConfigureAwait(false);
        var topic = $"bench.failover.{Environment.ProcessId}.{Guid.NewGuid():N}";
        var connects = 0;
        var clientOptions = BrokerClientOptions.Default with
        {
            Endpoints = pair.ClientEndpoints,
            ClientName = "fastbroker-bench-failover",
            Reconnect = true,
            ReconnectInitialDelay = TimeSpan.FromMilliseconds(5),
            ReconnectMaxDelay = TimeSpan.FromMilliseconds(100),
            ReconnectTimeout = TimeSpan.FromMinutes(5),
            ConnectTimeout = TimeSpan.FromSeconds(2),
            MaxInFlight = 65_536,
            OnEvent = e =>
            {
                if (e.Kind == BrokerClientEventKind.Connected)
                {
                    Interlocked.Increment(ref connects);
                }
            },
        };
        await using var client = await BrokerClient.ConnectAsync(clientOptions, cancellationToken).ConfigureAwait(false);
        var publisher = new SequencedPublisher(client, topic, options.Rate, s_standbyDurable);
        publisher.Start();
        List<double> failoverMs, promotionMs;
        try
        {
            // The topic exists on both nodes before the first kill (its first publish creates it).
            primary = await WaitForCaughtUpStandbyAsync(pair, topic, cancellationToken).ConfigureAwait(false);
            (failoverMs, promotionMs, primary) = await KillRoundsAsync(ctx, options, pair, publisher, topic, primary, cancellationToken).ConfigureAwait(false);
            ctx.Reporter.Progress("draining confirmations", 0.95);
            await publisher.StopAsync(TimeSpan.FromSeconds(60)).ConfigureAwait(false);
        }
        finally
        {
            publisher.Stop();
        }

        var published = publisher.Published;
        var (lost, duplicated, storedUnconfirmed, audit) = await AuditAsync(ctx, client, publisher, topic, primary, cancellationToken).ConfigureAwait(false);
        string? diagnostics = null;
        if (lost > 0 || duplicated > 0)
        {
            // What the next person needs to find out why: which records, and what both nodes went through.
            diagnostics = $"audit of '{primary.Name}': {audit}{Environment.NewLine}{await pair.DiagnosticsAsync().ConfigureAwait(false)}";
            ctx.Reporter.Info(diagnostics);
        }

        ctx.Reporter.Progress("failover", 1);
        if (publisher.Failed > 0)
        {
            ctx.Reporter.Info($"failed publishes: {publisher.ErrorSummary}");
        }

        var p50 = BenchContext.Median([.. failoverMs]);
        var max = failoverMs.Max();
        var promotionP50 = BenchContext.Median([.. promotionMs]);
        var result = new BenchResult("failover", "failover")
        {
            Runs = options.Rounds,
            Messages = published,
            Extra =
            [
                new("rounds", options.Rounds),
                new("failoverP50Ms", p50),
                new("failoverMaxMs", max),
                new("lost", lost),
                new("duplicated", duplicated),
                new("promotionP50Ms", promotionP50),
                new("published", published),
                new("confirmed", publisher.Confirmed),
                new("failedPublishes", publisher.Failed),
                new("storedUnconfirmed", storedUnconfirmed),
                new("connects", Volatile.Read(ref connects)),
            ],
            Note = $"kill → first confirm by the new primary: p50 {p50:0} ms, max {max:0} ms over {options.Rounds} round(s) (promotion seen p50 {promotionP50:0} ms); {published:N0} published at {options.Rate:N0}/s standby-durable, {publisher.Confirmed:N0} confirmed, {publisher.Failed:N0} failed; lost {lost}, duplicated {duplicated}",
        };
        ctx.Reporter.Result(result);
        return new FailoverSummary(failoverMs, promotionMs, published, publisher.Confirmed, publisher.Failed, lost, duplicated, result, diagnostics);
    }

    /// <summary>The kill rounds; returns each round's failover and promotion times and the primary at the end.</summary>
    private static async Task<(List<double> FailoverMs, List<double> PromotionMs, PairNodeProcess Primary)> KillRoundsAsync(
        BenchContext ctx, FailoverOptions options, LocalPair pair, SequencedPublisher publisher, string topic, PairNodeProcess primary, CancellationToken cancellationToken)
    {
        var random = options.Seed is { } seed ? new Random(seed) : new Random();
        var failoverMs = new List<double>();
        var promotionMs = new List<double>();
        var standby = pair.Other(primary);
        for (var round = 1; round <= options.Rounds; round++)
        {
            ctx.Reporter.Progress($"round {round}/{options.Rounds}: publishing", (round - 1) / (double)options.Rounds);
            var delay = options.MinKillDelay + ((options.MaxKillDelay - options.MinKillDelay) * random.NextDouble());
            await Task.Delay(delay, cancellationToken).ConfigureAwait(false);
            long epoch;
            while (true)
            {
                if (await LocalPair.StatusAsync(primary, cancellationToken).ConfigureAwait(false) is { IsPrimary: true } before)
                {
                    epoch = before.Epoch;
                    break;
                }

                // Roles changed since the pair was seen caught up (a loaded machine: a stalled primary taken for a dead
                // one): killing this node would measure no failover. Kill the primary of the moment, once caught up.
                ctx.Reporter.Info($"round {round}/{options.Rounds}: '{primary.Name}' is no longer primary before the kill; waiting for a caught-up pair again");
                primary = await WaitForCaughtUpStandbyAsync(pair, topic, cancellationToken).ConfigureAwait(false);
                standby = pair.Other(primary);
            }

            ctx.Reporter.Progress($"round {round}/{options.Rounds}: killed primary '{primary.Name}'", (round - 0.75) / options.Rounds);
            var killed = Stopwatch.GetTimestamp();
            LocalPair.Kill(primary); // returns once the process is reaped
            var firstConfirm = publisher.FirstConfirmIssuedAfter(Stopwatch.GetTimestamp());
            var promoted = await pair.WaitForAsync(standby, s => s.IsPrimary, "promotion to primary", s_stepTimeout, cancellationToken, pollMs: 10).ConfigureAwait(false);
            var promotedAt = Stopwatch.GetTimestamp();
            var confirmedAt = await firstConfirm.WaitAsync(s_stepTimeout, cancellationToken).ConfigureAwait(false);
            failoverMs.Add(Math.Round(Ms(killed, confirmedAt), 1));
            promotionMs.Add(Math.Round(Ms(killed, promotedAt), 1));

            ctx.Reporter.Progress($"round {round}/{options.Rounds}: '{primary.Name}' rejoining", (round - 0.5) / options.Rounds);
            var restarted = Stopwatch.GetTimestamp();
            pair.Restart(primary);
            var next = await WaitForCaughtUpStandbyAsync(pair, topic, cancellationToken).ConfigureAwait(false);
            ctx.Reporter.Info($"round {round}/{options.Rounds}: killed primary '{primary.Name}' (epoch {epoch}) after {delay.TotalSeconds:0.0} s; '{standby.Name}' primary (epoch {promoted.Epoch}) seen after {promotionMs[^1]:0} ms, first confirmation by the pair {failoverMs[^1]:0} ms after the kill; '{pair.Other(next).Name}' attached, caught-up standby of '{next.Name}' {Ms(restarted, Stopwatch.GetTimestamp()):0} ms after the restart");
            (primary, standby) = (next, pair.Other(next));
        }

        return (failoverMs, promotionMs, primary);
    }

    /// <summary>
    /// Reads the whole topic back from <paramref name="primary"/> and counts confirmed payloads missing, payloads
    /// stored more than once, and unconfirmed (failed) payloads stored anyway (allowed: a NotReplicated publish is
    /// written on the primary).
    /// </summary>
    private static async Task<(long Lost, long Duplicated, long StoredUnconfirmed, string Detail)> AuditAsync(
        BenchContext ctx, BrokerClient client, SequencedPublisher publisher, string topic, PairNodeProcess primary, CancellationToken cancellationToken)
    {
        // A sentinel after everything else: reading up to its offset reads every record the topic holds.
        var sentinel = new byte[SequencedPublisher.PayloadBytes];
        Array.Fill(sentinel, (byte)0xFF);
        var lastOffset = await client.PublishAsync(topic, sentinel, s_standbyDurable, cancellationToken).ConfigureAwait(false);

        var published = publisher.Published;
        ctx.Reporter.Progress($"reading back {published:N0} payloads from '{primary.Name}'", 0.97);
        var counter = new PayloadCounter(published, lastOffset);
        var readerOptions = BrokerClientOptions.Default with { Endpoints = [primary.ClientEndpoint], ClientName = "fastbroker-bench-failover-audit", Reconnect = false };
        await using (var reader = await BrokerClient.ConnectAsync(readerOptions, cancellationToken).ConfigureAwait(false))
        {
            await using var consumer = await reader.ConsumeAsync(topic, counter, SubscribeOptions.Default with { Start = SubscribeStart.Earliest, Credit = 8192 }, cancellationToken).ConfigureAwait(false);
            await counter.Done.Task.WaitAsync(TimeSpan.FromSeconds(60), cancellationToken).ConfigureAwait(false);
        }

        long lost = 0, duplicated = 0, storedUnconfirmed = 0;
        var firstLost = new List<long>();
        for (var seq = 0L; seq < published; seq++)
        {
            var n = counter.CountOf(seq);
            var confirmed = publisher.IsConfirmed(seq);
            if (confirmed && n == 0)
            {
                lost++;
                if (firstLost.Count < 20)
                {
                    firstLost.Add(seq);
                }
            }

            duplicated += n > 1 ? 1 : 0;
            storedUnconfirmed += !confirmed && n > 0 ? 1 : 0;
        }

        var detail = $"{counter.Records:N0} records up to offset {lastOffset}; first lost sequence numbers [{string.Join(", ", firstLost)}]; first repeated copies (sequence@first copy's offset/this copy's offset) [{string.Join(", ", counter.Repeats.Select(r => $"{r.Seq}@{r.FirstOffset}/{r.Offset}"))}]";
        return (lost, duplicated, storedUnconfirmed, detail);
    }

    /// <summary>
    /// Waits until a node is primary with the other attached as its standby and that standby has flushed everything the
    /// primary held when it was first seen attached (everything confirmed as local while it was away included); returns
    /// that primary. Whichever node it is: on a machine loaded enough to stall a node past the heartbeat timeout, the
    /// pair may change roles again after a kill (the restarted node taking over from a primary it found silent), and a
    /// wait on the node promoted by the kill would then never end.
    /// </summary>
    private static async Task<PairNodeProcess> WaitForCaughtUpStandbyAsync(LocalPair pair, string topic, CancellationToken cancellationToken)
    {
        var deadline = Stopwatch.GetTimestamp() + (60 * Stopwatch.Frequency);
        (PairNodeProcess Node, long Epoch, long Head)? first = null;
        while (true)
        {
            foreach (var node in new[] { pair.A, pair.B })
            {
                if (await LocalPair.StatusAsync(node, cancellationToken).ConfigureAwait(false) is not { IsPrimary: true, StandbyAttached: true } status
                    || !status.StandbyTopics.TryGetValue(topic, out var t))
                {
                    continue;
                }

                // The head when this primary (at this epoch) was first seen attached; a new primary starts again.
                if (first is not { } f || !ReferenceEquals(f.Node, node) || f.Epoch != status.Epoch)
                {
                    first = (node, status.Epoch, t.Head);
                }

                // And the witness records the standby in sync again: until it does, it would refuse to promote it.
                if (t.Durable >= first.Value.Head && !status.WitnessRecordsBehind)
                {
                    return node;
                }
            }

            if (Stopwatch.GetTimestamp() > deadline)
            {
                var detail = first is { } seen ? $"'{seen.Node.Name}' primary at epoch {seen.Epoch}, standby not durable up to offset {seen.Head} or still recorded behind at the witness" : "no primary with an attached standby holding the topic";
                throw new TimeoutException($"no caught-up standby within 60 s: {detail}");
            }

            await Task.Delay(20, cancellationToken).ConfigureAwait(false);
        }
    }

    private static double Ms(long from, long to) => (to - from) * 1000.0 / Stopwatch.Frequency;
}
