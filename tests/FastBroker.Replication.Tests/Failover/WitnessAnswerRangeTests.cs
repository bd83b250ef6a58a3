using System.Collections.Concurrent;
using FastBroker.Replication;
using FastBroker.Server;
using FastBroker.Testing;
using Xunit.Abstractions;

namespace FastBroker.ReplicationTests.Failover;

/// <summary>
/// A witness answer whose number is out of the protocol's range (a TTL of 2^63 - 1 ms, which no TimeSpan holds, or one
/// past the 60 s the protocol grants; a remaining time of 2^63 - 1 ms; a granted epoch no node can ask from again; a
/// negative one) is an error answer of that call, logged once, and its caller handles it as it handles an unreachable
/// witness: the primary's lease keeper keeps trying and loses the lease when it runs out, a standby stays standby and
/// asks again. Before, the witness client threw ArgumentOutOfRangeException ("TimeSpan overflowed"), which ended the
/// keeper's renewals and was an unexpected failure of the standby's loop, and it took a TTL it could represent as a
/// lease, however long. A stand-in witness answers what each case says.
/// </summary>
public sealed class WitnessAnswerRangeTests(ITestOutputHelper output)
{
    private static readonly TimeSpan s_deadline = TimeSpan.FromSeconds(30);

    // Why a keeper whose renewals were all answered out of the protocol lost its lease; the second when none of them
    // was answered before the lease ran out (its renewal thread stalled past the lease, on a loaded machine).
    private const string NotOfProtocol = "no successful renewal before the lease ran out (last attempt: the witness's answer, in the node's log, is not one of its protocol)";
    private const string NoneAttempted = "no successful renewal before the lease ran out (last attempt: no renewal attempted yet)";

    public static TheoryData<string, string> OutOfRangeAnswers => new()
    {
        { "GRANTED 7 9223372036854775807", "invalid TTL (9223372036854775807 ms): a granted TTL is 50..60000 ms" },
        { "GRANTED 7 60001", "invalid TTL (60001 ms): a granted TTL is 50..60000 ms" },
        { "GRANTED 7 -1000", "invalid TTL (-1000 ms): a granted TTL is 50..60000 ms" },
        { "GRANTED 9223372036854775807 1000", "invalid epoch (9223372036854775807): a granted epoch is 1..9223372036854775806" },
        { "DENIED a 1 9223372036854775807", "invalid remaining time (9223372036854775807 ms): a remaining lease time is 0..2147483647 ms" },
        { "DENIED a -1 100", "invalid epoch (-1): an epoch is 0 or more" },
    };

    [Theory]
    [MemberData(nameof(OutOfRangeAnswers))]
    public async Task A_renewal_answered_out_of_range_is_an_error_the_lease_keeper_retries_until_the_lease_runs_out(string renewal, string invalid)
    {
        // Each bad renewal is an error of that call, and the keeper asks again: a 60 s lease (54 s usable) renewed every
        // 100 ms, so that three bad answers are waited for, long before the lease could run out (a keeper that gave up
        // after one bad answer never gets there). None is taken for a lease, each is logged once.
        using (var witness = new StandInWitness())
        {
            var lines = new ConcurrentQueue<string>();
            await using var client = new WitnessClient(witness.Endpoint, TimeSpan.FromSeconds(5)) { Log = lines.Enqueue };
            var (keeper, lost) = await StartKeeperAsync(witness, client, renewal, TimeSpan.FromSeconds(60));
            await Eventually.TrueAsync(() => witness.Acquires >= 4 || lost.Task.IsCompleted, "the keeper asks again after each bad renewal", s_deadline);
            if (lost.Task.IsCompleted)
            {
                Assert.Fail($"the keeper lost its 60 s lease after {witness.Acquires - 1} bad renewals: {await lost.Task}");
            }
            Assert.True(keeper.IsValid);
            Assert.Equal(0, keeper.Renewals);
            await keeper.DisposeAsync(); // its renewal loop ended normally: nothing to rethrow
            Assert.Contains(lines, l => l.Contains($"witness {witness.Endpoint} answered an {invalid} ('{renewal}')", StringComparison.Ordinal));
            AssertLoggedOncePerAnswer(witness.Acquires - 1, lines, invalid);
        }

        // The keeper gives the lease up when its grant runs out, 4.5 s after a 5 s lease was asked for, saying why: the
        // reason names the answer the client logged without repeating it. A run whose renewal thread stalled past the
        // whole lease (none of its renewals, due every 100 ms, answered) says none was attempted, and tells nothing: it
        // is run again, up to three times.
        for (var run = 1; ; run++)
        {
            using var witness = new StandInWitness();
            var lines = new ConcurrentQueue<string>();
            await using var client = new WitnessClient(witness.Endpoint, TimeSpan.FromSeconds(5)) { Log = lines.Enqueue };
            var (keeper, lost) = await StartKeeperAsync(witness, client, renewal, TimeSpan.FromSeconds(5));
            var first = await Task.WhenAny(lost.Task, Task.Delay(s_deadline));
            Assert.True(first == lost.Task, $"the lease keeper did not lose its lease within {s_deadline.TotalSeconds:0} s (renewals answered: {witness.Acquires - 1}):\n{string.Join('\n', lines)}");
            var reason = await lost.Task;
            output.WriteLine($"run {run}: lost: {reason}");
            Assert.False(keeper.IsValid);
            Assert.Equal(0, keeper.Renewals);
            await keeper.DisposeAsync();
            if (reason == NoneAttempted)
            {
                Assert.True(run < 3, $"in each of {run} runs the keeper lost its lease before any renewal was answered (a stalled renewal thread)");
                continue;
            }

            Assert.Equal(NotOfProtocol, reason);
            AssertLoggedOncePerAnswer(witness.Acquires - 1, lines, invalid);
            return;
        }
    }

    /// <summary>A keeper of a lease of <paramref name="ttl"/> renewed every 100 ms, granted once, then answered <paramref name="renewal"/>.</summary>
    private static async Task<(LeaseKeeper Keeper, TaskCompletionSource<string> Lost)> StartKeeperAsync(StandInWitness witness, WitnessClient client, string renewal, TimeSpan ttl)
    {
        var answered = 0;
        witness.Answer = asked => Interlocked.Increment(ref answered) == 1 ? StandInWitness.Grant(asked) : renewal;
        var lost = new TaskCompletionSource<string>(TaskCreationOptions.RunContinuationsAsynchronously);
        var keeper = await LeaseKeeper.TryStartAsync(client, "a", 1, ttl, TimeSpan.FromMilliseconds(100), onLost: r => lost.TrySetResult(r));
        Assert.NotNull(keeper);
        Assert.Equal(StandInWitness.GrantedEpoch, keeper.Epoch);
        return (keeper, lost);
    }

    /// <summary>One line per bad answer the client read: the last one the witness counted may have been cut off by the end.</summary>
    private static void AssertLoggedOncePerAnswer(int bad, ConcurrentQueue<string> lines, string invalid)
    {
        var logged = lines.Count(l => l.Contains($"answered an {invalid}", StringComparison.Ordinal));
        Assert.True(logged <= bad && logged >= bad - 1, $"{logged} lines for {bad} bad answers:\n{string.Join('\n', lines)}");
    }

    [Theory]
    [MemberData(nameof(OutOfRangeAnswers))]
    public async Task A_standbys_lease_request_answered_out_of_range_is_an_error_and_the_standby_asks_again(string answer, string invalid)
    {
        using var dir = new TempDirectory();
        using var witness = new StandInWitness(); // denies while b starts: b becomes standby
        var lines = new ConcurrentQueue<string>();
        var before = 0;
        var node = await ReplicatedNode.StartAsync(BrokerOptions.Default, ServerOptions.Default with { Port = 0 }, new ReplicationOptions
        {
            NodeId = "b",
            DataDirectory = dir.Combine("b"),
            Port = FreePort.Next(),
            Peer = Cli.Address(FreePort.Next()), // nothing listens there: the primary is gone
            Witness = witness.Endpoint,
            InitialRole = NodeRole.Standby,
            Log = lines.Enqueue,
        });
        await using (node)
        {
            Assert.True(await node.WaitForRoleAsync(NodeRole.Standby, s_deadline), $"b becomes standby:\n{string.Join('\n', lines)}");
            before = witness.Acquires;
            witness.Answer = _ => answer;

            // The primary is silent: b asks for the lease, is answered out of range, and asks again later.
            await Eventually.TrueAsync(
                () => witness.Acquires >= before + 3 || lines.Any(l => l.Contains("node 'b': unexpected", StringComparison.Ordinal)) || node.Role != NodeRole.Standby,
                "b asks the witness for the lease three times",
                s_deadline);
            var log = string.Join('\n', lines);
            output.WriteLine(lines.FirstOrDefault(l => l.Contains("answered an invalid", StringComparison.Ordinal)) ?? "(no line)");
            Assert.DoesNotContain("node 'b': unexpected", log, StringComparison.Ordinal);
            Assert.Equal(NodeRole.Standby, node.Role);
            Assert.DoesNotContain("Primary (epoch", log, StringComparison.Ordinal);
            Assert.Contains($"node 'b': witness {witness.Endpoint} answered an {invalid} ('{answer}')", log, StringComparison.Ordinal);
        }

        // Logged once per call (the last may have been cut off when b stopped).
        var bad = witness.Acquires - before;
        var logged = lines.Count(l => l.Contains($"answered an {invalid}", StringComparison.Ordinal));
        Assert.True(logged <= bad && logged >= bad - 1, $"{logged} lines for {bad} bad answers:\n{string.Join('\n', lines)}");
    }

    /// <summary>
    /// A starting node whose one lease request is answered out of range logs that answer once: the witness client's line
    /// says what the witness answered, and the line of the role it takes (standby) says only that the lease was not
    /// granted. Before, the role line repeated the client's whole message, so each bad answer at start was two lines.
    /// </summary>
    [Theory]
    [MemberData(nameof(OutOfRangeAnswers))]
    public async Task A_starting_nodes_lease_request_answered_out_of_range_is_logged_once(string answer, string invalid)
    {
        using var dir = new TempDirectory();
        using var witness = new StandInWitness { Answer = _ => answer };
        var lines = new ConcurrentQueue<string>();
        var node = await ReplicatedNode.StartAsync(BrokerOptions.Default, ServerOptions.Default with { Port = 0 }, new ReplicationOptions
        {
            NodeId = "b",
            DataDirectory = dir.Combine("b"),
            Port = FreePort.Next(),
            Peer = Cli.Address(FreePort.Next()), // nothing listens there
            Witness = witness.Endpoint,
            InitialRole = NodeRole.Primary,
            HeartbeatInterval = TimeSpan.FromSeconds(60),
            HeartbeatTimeout = TimeSpan.FromSeconds(120), // no lease request of the standby loop within the test
            LeaseTtl = TimeSpan.FromSeconds(30),
            Log = lines.Enqueue,
        });
        await using (node)
        {
            Assert.True(await node.WaitForRoleAsync(NodeRole.Standby, s_deadline), $"b becomes standby:\n{string.Join('\n', lines)}");
        }

        var log = string.Join('\n', lines);
        output.WriteLine(log);
        Assert.Equal(1, witness.Acquires);
        var logged = lines.Count(l => l.Contains(answer, StringComparison.Ordinal) || l.Contains($"answered an {invalid}", StringComparison.Ordinal));
        Assert.True(logged == 1, $"{logged} lines for one bad answer:\n{log}");
        Assert.Contains($"node 'b': witness {witness.Endpoint} answered an {invalid} ('{answer}')", log, StringComparison.Ordinal);
        Assert.Contains(lines, l => l.Contains("node 'b': Standby (epoch 0): no witness lease", StringComparison.Ordinal));
    }

    /// <summary>
    /// A primary whose renewals are answered out of range logs each answer once: the witness client's line says what the
    /// witness answered, and the line of the lost lease (the node fenced) says only that the last answer, logged above,
    /// was not one of the protocol. Before, the lost-lease line repeated the last answer's whole message.
    /// </summary>
    [Theory]
    [MemberData(nameof(OutOfRangeAnswers))]
    public async Task A_primarys_lease_lost_to_renewals_answered_out_of_range_does_not_repeat_the_answer(string renewal, string invalid)
    {
        // The first renewal is due 750 ms after the grant and the lease runs out at 2.7 s: a run whose renewal thread
        // stalled the 1.95 s between them loses the lease with no renewal answered ("no renewal attempted yet"), has no
        // answer to log or repeat, and tells nothing: it is run again, up to three times.
        for (var run = 1; ; run++)
        {
            using var dir = new TempDirectory();
            using var witness = new StandInWitness();
            var answered = 0;
            witness.Answer = ttl => Interlocked.Increment(ref answered) == 1 ? StandInWitness.Grant(ttl) : renewal;
            var lines = new ConcurrentQueue<string>();
            var node = await ReplicatedNode.StartAsync(BrokerOptions.Default, ServerOptions.Default with { Port = 0 }, new ReplicationOptions
            {
                NodeId = "b",
                DataDirectory = dir.Combine("b"),
                Port = FreePort.Next(),
                Peer = Cli.Address(FreePort.Next()), // nothing listens there
                Witness = witness.Endpoint,
                InitialRole = NodeRole.Primary,
                HeartbeatInterval = TimeSpan.FromSeconds(60),
                HeartbeatTimeout = TimeSpan.FromSeconds(120), // no lease request of the standby loop after the fence
                LeaseTtl = TimeSpan.FromSeconds(3), // renewed every 750 ms, lost 2.7 s after the grant (b serves long before)
                Log = lines.Enqueue,
            });
            await using (node)
            {
                await Eventually.TrueAsync(() => lines.Any(l => l.Contains("witness lease lost", StringComparison.Ordinal)), "b loses its lease", s_deadline);
            }

            var log = string.Join('\n', lines);
            output.WriteLine($"run {run}:\n{log}");
            var lostLine = lines.First(l => l.Contains("witness lease lost", StringComparison.Ordinal));
            if (lostLine.Contains("witness lease lost: " + NoneAttempted, StringComparison.Ordinal))
            {
                Assert.True(run < 3, $"in each of {run} runs b lost its lease before any renewal was answered (a stalled renewal thread):\n{log}");
                continue;
            }

            Assert.Contains($"node 'b': witness {witness.Endpoint} answered an {invalid} ('{renewal}')", log, StringComparison.Ordinal);
            Assert.True(
                !lostLine.Contains(renewal, StringComparison.Ordinal) && !lostLine.Contains($"answered an {invalid}", StringComparison.Ordinal),
                $"the lost-lease line repeats the answer logged above it:\n{lostLine}");
            Assert.Contains("witness lease lost: " + NotOfProtocol, lostLine, StringComparison.Ordinal);

            // Each bad answer the client read is one line (the last may have been cut off by the loss).
            var bad = witness.Acquires - 1;
            var logged = lines.Count(l => l.Contains(renewal, StringComparison.Ordinal) || l.Contains($"answered an {invalid}", StringComparison.Ordinal));
            Assert.True(logged <= bad, $"{logged} lines for {bad} bad answers:\n{log}");
            return;
        }
    }

    [Fact]
    public async Task A_manual_promotion_answered_out_of_range_is_refused_with_the_witness_error_and_can_be_asked_again()
    {
        using var dir = new TempDirectory();
        using var witness = new StandInWitness();
        var lines = new ConcurrentQueue<string>();
        var node = await ReplicatedNode.StartAsync(BrokerOptions.Default, ServerOptions.Default with { Port = 0 }, new ReplicationOptions
        {
            NodeId = "b",
            DataDirectory = dir.Combine("b"),
            Port = FreePort.Next(),
            Peer = Cli.Address(FreePort.Next()),
            Witness = witness.Endpoint,
            InitialRole = NodeRole.Standby,
            HeartbeatInterval = TimeSpan.FromSeconds(60),
            HeartbeatTimeout = TimeSpan.FromSeconds(120), // no lease request of its own meanwhile
            LeaseTtl = TimeSpan.FromSeconds(30),
            PromoteAnswerTimeout = TimeSpan.FromSeconds(15),
            Log = lines.Enqueue,
        });
        await using (node)
        {
            Assert.True(await node.WaitForRoleAsync(NodeRole.Standby, s_deadline), $"b becomes standby:\n{string.Join('\n', lines)}");
            witness.Answer = _ => $"GRANTED {StandInWitness.GrantedEpoch} {long.MaxValue}";
            var refused = await Assert.ThrowsAsync<InvalidOperationException>(() => node.PromoteAsync().WaitAsync(s_deadline));
            output.WriteLine($"PromoteAsync: {refused.Message}");
            Assert.Contains($"the witness did not grant the lease (Error: witness {witness.Endpoint} answered an invalid TTL (9223372036854775807 ms)", refused.Message, StringComparison.Ordinal);
            Assert.Equal(NodeRole.Standby, node.Role);
            Assert.DoesNotContain(lines, l => l.Contains("node 'b': unexpected", StringComparison.Ordinal));

            witness.Answer = StandInWitness.Grant;
            Assert.Equal(StandInWitness.GrantedEpoch, await node.PromoteAsync().WaitAsync(s_deadline));
            Assert.Equal(NodeRole.Primary, node.Role);
        }
    }
}
