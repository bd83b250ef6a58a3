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
[Collection(nameof(FailoverCollection))]
public sealed class WitnessAnswerRangeTests(ITestOutputHelper output)
{
    private static readonly TimeSpan s_deadline = TimeSpan.FromSeconds(30);

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
        using var witness = new StandInWitness();
        var answered = 0;
        witness.Answer = ttl => Interlocked.Increment(ref answered) == 1 ? StandInWitness.Grant(ttl) : renewal;
        var lines = new ConcurrentQueue<string>();
        await using var client = new WitnessClient(witness.Endpoint, TimeSpan.FromSeconds(5)) { Log = lines.Enqueue };
        var lost = new TaskCompletionSource<string>(TaskCreationOptions.RunContinuationsAsynchronously);
        var keeper = await LeaseKeeper.TryStartAsync(client, "a", 1, TimeSpan.FromSeconds(5), onLost: r => lost.TrySetResult(r));
        Assert.NotNull(keeper);
        Assert.Equal(StandInWitness.GrantedEpoch, keeper.Epoch);

        // Each bad renewal is an error of that call: the keeper tries again every 1.25 s and gives the lease up when
        // its grant runs out, 4.5 s after it was asked for, saying why. The second attempt, due at 2.5 s, has 2 s of
        // slack for a loaded machine's stalls (a 1 s, then 2 s, grant left 0.4 and 0.8 s: a delayed renewal left room
        // for only one); a keeper that gave up after one bad answer still has one. None was taken for a lease, and the
        // reason names the answer the client logged without repeating it.
        var first = await Task.WhenAny(lost.Task, Task.Delay(s_deadline));
        Assert.True(first == lost.Task, $"the lease keeper did not lose its lease within {s_deadline.TotalSeconds:0} s (renewals answered: {witness.Acquires - 1}):\n{string.Join('\n', lines)}");
        var reason = await lost.Task;
        output.WriteLine($"lost: {reason}");
        Assert.Contains(lines, l => l.Contains($"witness {witness.Endpoint} answered an {invalid} ('{renewal}')", StringComparison.Ordinal));
        Assert.Equal("no successful renewal before the lease ran out (last attempt: the witness's answer, in the node's log, is not one of its protocol)", reason);
        Assert.False(keeper.IsValid);
        Assert.Equal(0, keeper.Renewals);
        await keeper.DisposeAsync(); // its renewal loop ended normally: nothing to rethrow

        // Logged once per call: one line per bad answer the client read (the last may have been cut off by the loss).
        var bad = witness.Acquires - 1;
        var logged = lines.Count(l => l.Contains($"answered an {invalid}", StringComparison.Ordinal));
        Assert.True(bad >= 2, $"renewals answered: {bad}");
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
        output.WriteLine(log);
        Assert.Contains($"node 'b': witness {witness.Endpoint} answered an {invalid} ('{renewal}')", log, StringComparison.Ordinal);
        var lostLine = lines.First(l => l.Contains("witness lease lost", StringComparison.Ordinal));
        Assert.True(
            !lostLine.Contains(renewal, StringComparison.Ordinal) && !lostLine.Contains($"answered an {invalid}", StringComparison.Ordinal),
            $"the lost-lease line repeats the answer logged above it:\n{lostLine}");
        Assert.Contains("witness lease lost: no successful renewal before the lease ran out (last attempt: the witness's answer, in the node's log, is not one of its protocol)", lostLine, StringComparison.Ordinal);

        // Each bad answer the client read is one line (the last may have been cut off by the loss).
        var bad = witness.Acquires - 1;
        var logged = lines.Count(l => l.Contains(renewal, StringComparison.Ordinal) || l.Contains($"answered an {invalid}", StringComparison.Ordinal));
        Assert.True(logged <= bad, $"{logged} lines for {bad} bad answers:\n{log}");
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
