using System.Globalization;
using FastBroker.Replication;
using FastBroker.Server;
using FastBroker.Testing;

namespace FastBroker.ReplicationTests;

/// <summary>
/// A <c>node.state</c> whose epoch no node can go on from (negative, or 2^63 - 1, from which no lease can be asked: a
/// node at it threw ArgumentOutOfRangeException on every lease request) refuses the node's start, naming the file and
/// the value; the largest epoch a witness grants starts (docs/replication.md, "Roles, epochs, fencing").
/// </summary>
[Collection(nameof(Failover.FailoverCollection))]
public sealed class NodeStateEpochRangeTests
{
    [Theory]
    [InlineData("9223372036854775807")]
    [InlineData("-1")]
    [InlineData("-9223372036854775808")]
    [InlineData("99999999999999999999")]
    public async Task A_node_state_epoch_out_of_range_refuses_the_start_naming_the_file_and_value(string epoch)
    {
        await using var witness = await WitnessFixture.StartAsync();
        using var dir = new TempDirectory("fastbroker-node-epoch");
        var options = Options(dir, witness.Endpoint);
        var statePath = WriteState(options, epoch);

        ReplicatedNode? started = null;
        try
        {
            started = await ReplicatedNode.StartAsync(BrokerOptions.Default, ServerOptions.Default with { Port = 0 }, options);
            var primary = await started.WaitForRoleAsync(NodeRole.Primary, TimeSpan.FromSeconds(5));
            Assert.Fail($"started with epoch={epoch}: primary {primary}, role {started.Role}, epoch {started.Epoch}, witness log: {string.Join(" | ", witness.Log)}");
        }
        catch (InvalidDataException e)
        {
            Assert.Contains(statePath, e.Message, StringComparison.Ordinal);
            Assert.Contains(string.Create(CultureInfo.InvariantCulture, $"has an epoch out of range: '{epoch}' (0 to 9223372036854775806)"), e.Message, StringComparison.Ordinal);
        }
        finally
        {
            if (started is not null)
            {
                await started.DisposeAsync();
            }
        }

        Assert.False(Directory.Exists(Path.Combine(options.DataDirectory, "topics")), "no broker is opened for a node refused at start");
    }

    /// <summary><c>fastbroker serve --peer</c> with such a <c>node.state</c>: one line naming the file and value, exit 1, no stack trace.</summary>
    [Fact]
    public async Task Serve_with_a_node_state_epoch_out_of_range_says_so_and_exits_1()
    {
        using var dir = new TempDirectory("fastbroker-node-epoch");
        var data = dir.Combine("a");
        var statePath = Path.Combine(data, "replication", "node.state");
        Directory.CreateDirectory(Path.GetDirectoryName(statePath)!);
        File.WriteAllText(statePath, "epoch=9223372036854775807\nrole=Primary\n");
        string[] args = ["serve", "--data", data, "--port", "0", "--admin-port", "-1", "--peer", "127.0.0.1:1", "--replication-port", "0", "--node-id", "a"];

        var outcome = await Failover.CliOutcome.RunAsync(args, TimeSpan.FromSeconds(30));

        var reason = $"'{statePath}' has an epoch out of range: '9223372036854775807' (0 to 9223372036854775806)";
        Assert.True(
            outcome.ExitCode == 1 && !outcome.HasStackTrace && outcome.Errors.Contains(reason, StringComparison.Ordinal),
            $"expected exit 1 and \"{reason}\" on stderr: {outcome.Describe(args)}, stdout: [{outcome.Output}]");
    }

    /// <summary>The largest epoch a witness grants is one a node starts from (and asks the witness with).</summary>
    [Fact]
    public async Task The_largest_epoch_a_witness_grants_starts()
    {
        await using var witness = await WitnessFixture.StartAsync();
        using var dir = new TempDirectory("fastbroker-node-epoch");
        var options = Options(dir, witness.Endpoint);
        WriteState(options, (long.MaxValue - 1).ToString(CultureInfo.InvariantCulture));

        await using var node = await ReplicatedNode.StartAsync(BrokerOptions.Default, ServerOptions.Default with { Port = 0 }, options);
        Assert.Equal(long.MaxValue - 1, node.Epoch);
    }

    private static string WriteState(ReplicationOptions options, string epoch)
    {
        var path = Path.Combine(options.DataDirectory, "replication", "node.state");
        Directory.CreateDirectory(Path.GetDirectoryName(path)!);
        File.WriteAllText(path, $"epoch={epoch}\nrole=Primary\n");
        return path;
    }

    private static ReplicationOptions Options(TempDirectory dir, string witness) => new()
    {
        NodeId = "a",
        DataDirectory = dir.Combine("a"),
        Port = 0,
        Peer = "127.0.0.1:1", // nobody: the node decides alone
        Witness = witness,
        InitialRole = NodeRole.Primary,
        PeerWait = TimeSpan.Zero,
    };
}
