using System.Globalization;
using FastBroker.Compare.Servers;

namespace FastBroker.Compare.Tests;

/// <summary>
/// The tool's launchers: each competitor's server starts on a free loopback port with its data in a temp directory,
/// and stopping it leaves neither a process of its tree (RabbitMQ: script → erl → beam.smp → children) nor the
/// directory behind.
/// </summary>
public class LauncherTests
{
    [Theory]
    [InlineData("redis")]
    [InlineData("nats")]
    [InlineData("rabbitmq")]
    public async Task Stopping_a_server_kills_its_process_tree_and_deletes_its_directory(string system)
    {
        var server = await (system switch
        {
            "redis" => Competitors.StartRedisAsync(null),
            "nats" => Competitors.StartNatsAsync(null),
            _ => Competitors.StartRabbitMqAsync(null),
        }).WaitAsync(TimeSpan.FromMinutes(2));
        int[] tree;
        try
        {
            Assert.False(server.HasExited);
            Assert.True(Directory.Exists(server.Directory), server.Directory);
            tree = [server.ProcessId, .. Descendants(server.ProcessId)];
        }
        finally
        {
            await server.DisposeAsync();
        }

        Assert.True(server.HasExited);
        Assert.False(Directory.Exists(server.Directory), server.Directory);
        var alive = tree.Where(IsAlive).ToList();
        Assert.True(alive.Count == 0, $"still running after stop: {string.Join(", ", alive)} (tree {string.Join(", ", tree)})");
    }

    [Fact]
    public void A_missing_server_is_named_with_the_install_script()
    {
        Assert.Equal("redis-server not installed: run tools/install-competitors.sh", Competitors.NotInstalled("redis-server"));
        Assert.Null(Competitors.FindBinary("no-such-server-" + Guid.NewGuid().ToString("N")));
    }

    private static bool IsAlive(int pid)
    {
        // A zombie (state Z) has exited: only its parent's wait is missing.
        var stat = Path.Combine("/proc", pid.ToString(CultureInfo.InvariantCulture), "stat");
        try
        {
            var text = File.ReadAllText(stat);
            return text[(text.LastIndexOf(')') + 2)..].Split(' ')[0] != "Z";
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return false;
        }
    }

    /// <summary>Every process below <paramref name="root"/> (from each process's parent id in /proc/*/stat).</summary>
    private static List<int> Descendants(int root)
    {
        var parents = new Dictionary<int, int>();
        foreach (var dir in Directory.EnumerateDirectories("/proc"))
        {
            if (!int.TryParse(Path.GetFileName(dir), out var pid))
            {
                continue;
            }

            try
            {
                var text = File.ReadAllText(Path.Combine(dir, "stat"));
                parents[pid] = int.Parse(text[(text.LastIndexOf(')') + 2)..].Split(' ')[1], CultureInfo.InvariantCulture);
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException or FormatException)
            {
            }
        }

        var result = new List<int>();
        var frontier = new Queue<int>([root]);
        while (frontier.Count > 0 && result.Count < 10_000)
        {
            var p = frontier.Dequeue();
            foreach (var child in parents.Where(kv => kv.Value == p).Select(kv => kv.Key))
            {
                result.Add(child);
                frontier.Enqueue(child);
            }
        }

        return result;
    }
}
