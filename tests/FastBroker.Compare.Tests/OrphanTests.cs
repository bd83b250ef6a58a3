using System.Globalization;
using FastBroker.Compare.Servers;

namespace FastBroker.Compare.Tests;

/// <summary>
/// The compare tool leaves no server running: SIGTERM while RabbitMQ starts (script → erl → beam.smp, epmd
/// daemonized) or once it runs kills every process of the node and its epmd and deletes the directory; and the servers
/// a <c>kill -9</c> of the tool left behind are reaped at the next start, a live owner's servers left alone.
/// </summary>
public class OrphanTests
{
    [Theory]
    [InlineData("script")] // the start script runs, nothing of Erlang yet
    [InlineData("beam")] // beam.smp of the node runs, its port does not accept yet
    [InlineData("ready")] // the port accepts: the tool is into its workloads
    public async Task Sigterm_to_the_tool_leaves_no_rabbitmq_process_epmd_or_directory(string stage)
    {
        var dir = Directory.CreateTempSubdirectory("fastbroker-orphan-test-").FullName;
        string? node = null;
        var epmdPort = 0;
        var tool = ToolProcess.Start("--systems", "rabbitmq", "--warmup", "0", "--runs", "1", "--messages", "1000000", "--dir", dir);
        try
        {
            var nodePort = 0;
            var script = await ToolProcess.EventuallyAsync(
                () =>
                {
                    var s = ToolProcess.Processes().FirstOrDefault(p => p.Parent == tool.Id && ToolProcess.Variable(p.Environment, "RABBITMQ_NODENAME") is not null);
                    if (s.Pid == 0)
                    {
                        return false;
                    }

                    node = ToolProcess.Variable(s.Environment, "RABBITMQ_NODENAME");
                    epmdPort = int.Parse(ToolProcess.Variable(s.Environment, "ERL_EPMD_PORT")!, CultureInfo.InvariantCulture);
                    nodePort = int.Parse(ToolProcess.Variable(s.Environment, "RABBITMQ_NODE_PORT")!, CultureInfo.InvariantCulture);
                    return true;
                },
                TimeSpan.FromMinutes(2));
            Assert.True(script, $"the tool started no rabbitmq-server script:\n{tool.Output}");

            if (stage == "beam")
            {
                Assert.True(
                    await ToolProcess.EventuallyAsync(() => ToolProcess.Processes().Any(p => p.CommandLine.Contains("beam.smp", StringComparison.Ordinal) && Marked(p, node!)), TimeSpan.FromMinutes(2)),
                    $"no beam.smp of {node}:\n{tool.Output}");
            }
            else if (stage == "ready")
            {
                Assert.True(await ToolProcess.EventuallyAsync(() => ToolProcess.CanConnect(nodePort), TimeSpan.FromMinutes(2)), $"{node} never accepted on {nodePort}:\n{tool.Output}");
            }

            tool.Signal("TERM");
            Assert.True(await tool.WaitForExitAsync(TimeSpan.FromMinutes(1)), $"the tool did not exit within 1 min of SIGTERM:\n{tool.Output}");

            var left = new List<string>();
            var clean = await ToolProcess.EventuallyAsync(
                () =>
                {
                    left = [.. ToolProcess.Processes().Where(p => Marked(p, node!) || ToolProcess.Variable(p.Environment, "ERL_EPMD_PORT") == epmdPort.ToString(CultureInfo.InvariantCulture)).Select(p => $"{p.Pid} {p.CommandLine.Replace('\0', ' ')[..Math.Min(120, p.CommandLine.Length)]}")];
                    if (ToolProcess.CanConnect(epmdPort))
                    {
                        left.Add($"epmd on {epmdPort}");
                    }

                    left.AddRange(Directory.EnumerateFileSystemEntries(dir));
                    return left.Count == 0;
                },
                TimeSpan.FromSeconds(30));
            Assert.True(clean, $"left after SIGTERM ({stage}): {string.Join("; ", left)}\n{tool.Output}");
        }
        finally
        {
            tool.Dispose();
            if (node is not null)
            {
                var port = epmdPort.ToString(CultureInfo.InvariantCulture);
                ToolProcess.KillAll(ToolProcess.Processes().Where(p => Marked(p, node) || ToolProcess.Variable(p.Environment, "ERL_EPMD_PORT") == port).Select(p => p.Pid));
            }

            ServerProcess.DeleteDirectory(dir);
        }
    }

    [Fact]
    public async Task Servers_left_by_a_killed_tool_are_reaped_and_a_live_owners_are_not()
    {
        var dir = Directory.CreateTempSubdirectory("fastbroker-orphan-test-").FullName;
        var orphans = new List<int>();
        ServerProcess? live = null;
        var tool = ToolProcess.Start("--systems", "redis,nats", "--runs", "1", "--warmup", "600", "--dir", dir);
        try
        {
            // Both started: the tool says so, then warms the machine up for 10 minutes.
            Assert.True(await ToolProcess.EventuallyAsync(() => tool.Output.Contains("as child processes", StringComparison.Ordinal) || tool.HasExited, TimeSpan.FromMinutes(2)), tool.Output);
            orphans = [.. ToolProcess.Processes().Where(p => p.Parent == tool.Id && (p.CommandLine.Contains("redis-server", StringComparison.Ordinal) || p.CommandLine.Contains("nats-server", StringComparison.Ordinal))).Select(p => p.Pid)];
            Assert.True(orphans.Count == 2, $"expected redis-server and nats-server below the tool, found {orphans.Count}:\n{tool.Output}");

            live = await Competitors.StartRedisAsync(dir).WaitAsync(TimeSpan.FromMinutes(1));
            tool.Signal("KILL");
            Assert.True(await tool.WaitForExitAsync(TimeSpan.FromMinutes(1)), "the tool survived SIGKILL");
            Assert.All(orphans, pid => Assert.True(ToolProcess.IsAlive(pid), $"{pid} died with the tool: nothing to reap"));

            using var log = new StringWriter();
            var (pids, _) = Orphans.Reap(log, dir);

            Assert.True(await ToolProcess.EventuallyAsync(() => !orphans.Any(ToolProcess.IsAlive), TimeSpan.FromSeconds(30)), $"still running after the reap: {string.Join(", ", orphans.Where(ToolProcess.IsAlive))}; log: {log}");
            Assert.Subset(pids.ToHashSet(), orphans.ToHashSet());
            Assert.Equal([live.Directory], Directory.GetDirectories(dir));
            Assert.False(live.HasExited, "the live owner's redis was killed");
            Assert.True(ToolProcess.CanConnect(live.Port), "the live owner's redis stopped accepting");
            var line = Assert.Single(log.ToString().Split('\n', StringSplitOptions.RemoveEmptyEntries));
            Assert.Contains(tool.Id.ToString(CultureInfo.InvariantCulture), line, StringComparison.Ordinal);
        }
        finally
        {
            tool.Dispose();
            ToolProcess.KillAll(orphans);
            if (live is not null)
            {
                await live.DisposeAsync();
            }

            ServerProcess.DeleteDirectory(dir);
        }
    }

    /// <summary>A process of <paramref name="node"/>: its name on the command line or in the environment.</summary>
    private static bool Marked((int Pid, int Parent, string CommandLine, string Environment) p, string node) =>
        p.CommandLine.Contains(node, StringComparison.Ordinal) || ToolProcess.Variable(p.Environment, "RABBITMQ_NODENAME") == node;
}
