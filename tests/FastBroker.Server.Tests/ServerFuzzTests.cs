using System.Diagnostics;
using System.Text;
using FastBroker.Protocol;
using FastBroker.Testing;
using Xunit.Abstractions;

namespace FastBroker.ServerTests;

/// <summary>
/// Invariant 7 at the server, with state: each round a connection completes its handshake, takes a durable
/// subscription, a work-queue membership and a producer epoch, publishes, then sends frames out of order, with odd
/// names, and finally malformed ones, while a well-behaved publisher and subscriber keep their stream going on other
/// connections. After each round: the good stream is intact (every message once, in order), the bad connection got its
/// confirmations and its reason before the close, and nothing it held is left (connection, handshake slot,
/// subscription, durable name, group membership, unacked deliveries). Seeded: the seed and round are in every failure
/// message (FB_FUZZ_SEED=n runs another seed).
/// </summary>
public partial class ServerFuzzTests(ITestOutputHelper output)
{
    private const string GoodTopic = "good.stream";
    private const string BadTopic = "fuzz.bad";
    private const string WorkTopic = "fuzz.work";
    private const string BadGroup = "bad-group";

    [Fact]
    public async Task Stateful_hostile_connections_leave_nothing_behind_and_never_disturb_a_good_client()
    {
        var seed = int.TryParse(Environment.GetEnvironmentVariable("FB_FUZZ_SEED"), out var s) ? s : 20261206;
        var rounds = int.TryParse(Environment.GetEnvironmentVariable("FB_FUZZ_ROUNDS"), out var n) ? n : 200;
        var rng = new Random(seed);

        // MaxConnections = the two good connections + two: a handshake slot a bad connection kept would refuse a later
        // round's HELLO (TooManyConnections).
        await using var f = await ServerFixture.StartAsync(o => o with { MaxConnections = 5 });
        f.Broker.CreateTopic(WorkTopic);
        await using var good = await GoodStream.StartAsync(f);
        var stored = new List<(string Topic, ulong Offset, string Payload)>();
        var sw = Stopwatch.StartNew();
        var closes = new Dictionary<string, int>();
        for (var round = 0; round < rounds; round++)
        {
            // Some rounds run two bad connections at once: their durable names and group collide.
            var scripts = Enumerable.Range(0, rng.Next(4) == 0 ? 2 : 1).Select(_ => Script.Make(rng, round)).ToList();
            var where = $"seed {seed}, round {round}: {string.Join(" || ", scripts)}";
            var goodBefore = good.Rounds;
            var runs = scripts.Select(x => RunAsync(f, x, where)).ToList();
            if (rng.Next(5) == 0)
            {
                // A worker that settles real delivery tags wrongly: twice, stale, after leaving, with extreme delays.
                var worker = new Random(rng.Next());
                where += $" || worker {round}";
                runs.Add(RunWorkerAsync(f, worker, round, where));
            }

            foreach (var outcome in await Task.WhenAll(runs))
            {
                stored.AddRange(outcome.Stored);
                closes[outcome.CloseReason] = closes.GetValueOrDefault(outcome.CloseReason) + 1;
            }

            await Eventually.TrueAsync(() => good.Rounds > goodBefore || good.Failure is not null, $"{where}: the good stream made no progress; log: {Tail(f)}", TimeSpan.FromSeconds(30));
            Assert.True(good.Failure is null, $"{where}: the good stream failed: {good.Failure}");
            await AssertNothingLeftAsync(f, scripts.SelectMany(x => x.DurableNames), where);
            Assert.True(!f.Failures.Any(), $"{where}: the server logged an unexpected exception: {string.Join(" | ", f.Failures)}");
        }

        await good.StopAsync();
        Assert.True(good.Failure is null, $"seed {seed}: the good stream failed: {good.Failure}");

        // Every publish of a bad connection that was confirmed is in the journal, as it was sent.
        await using (var reader = await f.ConnectAsync())
        {
            var expected = stored.Where(x => x.Topic == BadTopic).ToDictionary(x => x.Offset, x => x.Payload);
            if (expected.Count > 0)
            {
                await reader.SubscribeAsync(1, 1, BadTopic, 1_000_000, Protocol.StartKind.Earliest);
                var max = expected.Keys.Max();
                var seen = new Dictionary<ulong, string>();
                var others = new List<ServerFrame>();
                while (!seen.ContainsKey(max))
                {
                    foreach (var d in await reader.ReadDeliveriesAsync(1, others))
                    {
                        seen[d.Offset] = d.Text;
                    }
                }

                foreach (var (offset, payload) in expected)
                {
                    Assert.True(seen.TryGetValue(offset, out var got) && got == payload, $"seed {seed}: confirmed publish at {BadTopic}@{offset} ('{payload}') reads back as '{got}'");
                }
            }
        }

        output.WriteLine($"seed {seed}: {rounds} rounds in {sw.Elapsed}, {good.Rounds} good rounds, {stored.Count} confirmed bad publishes; ends: {string.Join(", ", closes.OrderBy(x => x.Key))}; takeovers {f.Log.Count(l => l.Contains("took durable", StringComparison.Ordinal))}; log {f.Log.Count}");
        Assert.True(good.Rounds >= rounds, $"seed {seed}: only {good.Rounds} good rounds");
        Assert.True(closes.Keys.Count(k => k != "none") >= 4, $"seed {seed}: the rounds closed for too few reasons: {string.Join(", ", closes)}");
        Assert.True(sw.Elapsed < TimeSpan.FromMinutes(5), $"seed {seed}: {rounds} rounds took {sw.Elapsed}");
    }

    /// <summary>What a round left: the confirmed publishes of the bad connection and how it ended.</summary>
    private sealed record Outcome(List<(string Topic, ulong Offset, string Payload)> Stored, string CloseReason);

    private static async Task<Outcome> RunAsync(ServerFixture f, Script script, string where)
    {
        var stored = new List<(string, ulong, string)>();
        await using var c = await RawConnection.ConnectAsync(f.EndPoint);
        await c.SendRawAsync(script.Bytes);
        if (script.Abort)
        {
            return new Outcome(stored, "aborted");
        }

        c.ShutdownSend();
        var frames = await c.ReadUntilClosedAsync(TimeSpan.FromSeconds(30));
        var text = string.Join(" | ", frames.Take(40));
        var closeAt = frames.FindIndex(x => x.CloseConnection);
        Assert.True(closeAt < 0 || closeAt == frames.Count - 1, $"{where}: frames after the CLOSE error: {text}");
        var close = closeAt < 0 ? null : frames[closeAt];
        if (close is not null)
        {
            Assert.True(close.ErrorReason.Length > 0, $"{where}: a CLOSE error without a reason: {close}");
        }

        if (script.MustClose is { } code)
        {
            Assert.True(close is not null && close.ErrorCode == code, $"{where}: expected the close with {code}, got: {text}");
            if (script.ClosingRequestId is { } rid)
            {
                Assert.True(close!.RequestId == rid, $"{where}: the close names request {close.RequestId}, not {rid}: {close}");
            }
        }
        else if (!script.MayClose)
        {
            Assert.True(close is null, $"{where}: closed although every frame was well-formed: {text}");
        }

        // Frames after the closing one are not acted on: none of them is answered.
        foreach (var x in frames)
        {
            Assert.False(script.MustClose is not null && x.RequestId >= Script.AfterCloseIds && x.Type is FrameType.Ok or FrameType.Error or FrameType.Pong or FrameType.AdminResult, $"{where}: a frame sent after the closing one was answered: {x}");
        }

        // Every publish sent before the closing (or last) frame is confirmed before the close.
        var confirms = new Dictionary<ulong, ConfirmRange>();
        foreach (var x in frames.Where(x => x.Type == FrameType.Confirm))
        {
            foreach (var r in x.Ranges)
            {
                for (var i = 0u; i < r.Count; i++)
                {
                    Assert.True(confirms.TryAdd(r.FirstRequestId + i, new ConfirmRange(r.FirstRequestId + i, 1, r.Status, r.Duplicate, r.Status == ErrorCode.None ? r.FirstOffset + i : 0)), $"{where}: request {r.FirstRequestId + i} confirmed twice: {text}");
                }
            }
        }

        foreach (var p in script.Publishes)
        {
            Assert.True(confirms.TryGetValue(p.RequestId, out var r), $"{where}: publish {p.RequestId} to '{p.Topic}' got no CONFIRM before the close: {text}");
            if (r.Status == ErrorCode.None)
            {
                stored.Add((p.Topic, r.FirstOffset, p.Payload));
            }
            else
            {
                Assert.True(p.MayFail, $"{where}: publish {p.RequestId} to '{p.Topic}' failed with {r.Status}: {text}");
            }
        }

        return new Outcome(stored, close is null ? "none" : close.ErrorCode.ToString());
    }

    private static async Task<Outcome> RunWorkerAsync(ServerFixture f, Random rng, int round, string where)
    {
        await using var c = await RawConnection.OpenAsync(f.EndPoint, RawConnection.AllFeatures);
        var steps = new List<string>();
        string Where() => $"{where}: worker did {string.Join(", ", steps)}";
        for (var i = 0; i < 3; i++)
        {
            await c.PublishAsync(c.NextRequestId(), WorkTopic, $"work r{round}-{i}");
        }

        var join = c.NextRequestId();
        await c.SendAsync(w => FrameWriter.WriteJoinGroup(w, join, 2, Encoding.UTF8.GetBytes(BadGroup), Encoding.UTF8.GetBytes(WorkTopic), (uint)rng.Next(1, 4), 60_000, 1000));
        steps.Add("JOIN_GROUP 2");
        var tags = new List<DeliveryTag>();
        var frames = await c.ReadUntilAsync(x => x.Type is FrameType.Deliver or FrameType.DeliverBatch || (x.Type == FrameType.Error && x.RequestId == join), TimeSpan.FromSeconds(30));
        Assert.True(frames.Any(x => x.Type == FrameType.Ok && x.RequestId == join), $"{Where()}: JOIN_GROUP not answered OK first: {string.Join(" | ", frames)}");
        tags.AddRange(frames.SelectMany(x => x.Deliveries).Where(d => d.SubscriptionId == 2).Select(d => d.Tag));
        Assert.True(tags.Count > 0, $"{Where()}: no delivery");

        for (var i = rng.Next(1, 6); i > 0; i--)
        {
            var tag = tags[rng.Next(tags.Count)];
            var id = c.NextRequestId();
            switch (rng.Next(7))
            {
                case 0:
                    steps.Add($"ACK {tag} twice");
                    await c.SendAsync(w => FrameWriter.WriteAck(w, id, 2, [tag, tag]));
                    break;
                case 1:
                    steps.Add($"ACK {tag} stale");
                    await c.SendAsync(w => FrameWriter.WriteAck(w, id, 2, new DeliveryTag(tag.Offset, tag.DeliveryCount + 1)));
                    break;
                case 2:
                    steps.Add($"NACK {tag} requeue in 49 days");
                    await c.SendAsync(w => FrameWriter.WriteNack(w, id, 2, tag, requeue: true, uint.MaxValue, "later"u8));
                    break;
                case 3:
                    steps.Add($"NACK {tag} dead-letter");
                    await c.SendAsync(w => FrameWriter.WriteNack(w, id, 2, tag, requeue: false, 0, "\0/.."u8));
                    break;
                case 4:
                    steps.Add("CREDIT 2 max");
                    await c.SendAsync(w => FrameWriter.WriteCredit(w, id, 2, uint.MaxValue));
                    break;
                case 5:
                    steps.Add("UNSUBSCRIBE 2, then ACK");
                    await c.SendAsync(w => FrameWriter.WriteUnsubscribe(w, id, 2));
                    await c.SendAsync(w => FrameWriter.WriteAck(w, c.NextRequestId(), 2, tag));
                    break;
                default:
                    steps.Add($"ACK {tag}");
                    await c.SendAsync(w => FrameWriter.WriteAck(w, id, 2, tag));
                    break;
            }
        }

        // Everything so far is answered, the connection open.
        var answered = await c.RoundTripAsync();
        Assert.True(!answered.Any(x => x.CloseConnection), $"{Where()}: closed: {string.Join(" | ", answered)}");
        switch (rng.Next(3))
        {
            case 0:
                steps.Add("abort");
                return new Outcome([], "aborted");
            case 1:
                steps.Add("ACK count 0");
                await c.SendRawAsync(new byte[] { 20, 0, 0, 0, (byte)FrameType.Ack, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0 });
                var closed = await c.ReadUntilClosedAsync(TimeSpan.FromSeconds(30));
                Assert.True(closed.Count > 0 && closed[^1].CloseConnection && closed[^1].ErrorCode == ErrorCode.MalformedFrame, $"{Where()}: {string.Join(" | ", closed)}");
                return new Outcome([], "MalformedFrame");
            default:
                steps.Add("half-close");
                c.ShutdownSend();
                var rest = await c.ReadUntilClosedAsync(TimeSpan.FromSeconds(30));
                Assert.True(!rest.Any(x => x.CloseConnection), $"{Where()}: {string.Join(" | ", rest)}");
                return new Outcome([], "none");
        }
    }

    private static async Task AssertNothingLeftAsync(ServerFixture f, IEnumerable<string> durableNames, string where)
    {
        await Eventually.TrueAsync(() => f.Server.ConnectionCount == 2, $"{where}: {f.Server.ConnectionCount} connections open, 2 expected (the good ones)", TimeSpan.FromSeconds(30));

        // One subscription is the good one; a bad connection's subscriptions are closed with it.
        await Eventually.TrueAsync(
            () => f.Broker.GetSnapshot().Subscriptions.Count == 1,
            $"{where}: subscriptions left open: {string.Join(", ", f.Broker.GetSnapshot().Subscriptions.Select(x => $"{x.Pattern}/{x.DurableName}"))}",
            TimeSpan.FromSeconds(30));
        await Eventually.TrueAsync(
            () => f.Broker.GetSnapshot().Groups.All(g => g.Members == 0 && g.InFlight == 0),
            $"{where}: group members or unacked deliveries left: {string.Join(", ", f.Broker.GetSnapshot().Groups.Select(g => $"{g.Group}@{g.Topic} members={g.Members} inFlight={g.InFlight}"))}",
            TimeSpan.FromSeconds(30));

        // The durable names it held are free again (claimed here by an embedded subscription, then given back).
        foreach (var name in durableNames.Distinct())
        {
            try
            {
                using var probe = f.Broker.Subscribe(BadTopic, new SubscriptionOptions { DurableName = name, Start = StartPosition.Latest });
            }
            catch (BrokerException e) when (e.Code == BrokerErrorCode.DurableNameInUse)
            {
                Assert.Fail($"{where}: durable name '{name}' is still claimed after its connection closed: {e.Message}");
            }
        }
    }

    private static string Tail(ServerFixture f) => string.Join(" | ", f.Log.TakeLast(10));
}
