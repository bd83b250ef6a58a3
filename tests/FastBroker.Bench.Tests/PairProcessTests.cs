using System.Diagnostics;
using System.Globalization;
using System.Text.RegularExpressions;
using FastBroker.Bench.Pair;

namespace FastBroker.Bench.Tests;

/// <summary>
/// <see cref="PairProcess"/>'s kill returns even when a grandchild outlives the process and keeps its stdout and stderr
/// open (a daemon, or an orphan a tree kill missed): the wait for the output's end is bounded.
/// </summary>
public class PairProcessTests
{
    [Fact]
    public async Task Kill_returns_while_a_grandchild_still_holds_the_output_pipes()
    {
        // bash prints the pid of its background sleep (which inherits stdout and stderr) and waits on it.
        var psi = new ProcessStartInfo("/bin/bash") { UseShellExecute = false, RedirectStandardOutput = true, RedirectStandardError = true };
        psi.ArgumentList.Add("-c");
        psi.ArgumentList.Add("sleep 600 & echo \"grandchild $!\"; wait");
        var child = PairProcess.Start(psi, "bash", killTree: false);
        var grandchild = 0;
        try
        {
            var deadline = DateTime.UtcNow.AddSeconds(30);
            while (grandchild == 0 && DateTime.UtcNow < deadline)
            {
                if (Regex.Match(child.Tail(), @"grandchild (\d+)") is { Success: true } m)
                {
                    grandchild = int.Parse(m.Groups[1].Value, CultureInfo.InvariantCulture);
                }
                else
                {
                    await Task.Delay(20);
                }
            }

            Assert.True(grandchild > 0, $"no grandchild pid printed: {child.Tail()}");

            // Kills bash alone; the sleep keeps the pipes. Without a bounded drain this never returns.
            var kill = Task.Run(child.Kill);
            var finished = await Task.WhenAny(kill, Task.Delay(TimeSpan.FromSeconds(60)));
            Assert.True(finished == kill, "PairProcess.Kill still waiting after 60 s on output a grandchild holds open");
            Assert.True(child.HasExited);
        }
        finally
        {
            if (grandchild > 0)
            {
                try
                {
                    using var sleep = Process.GetProcessById(grandchild);
                    sleep.Kill();
                }
                catch (Exception e) when (e is ArgumentException or InvalidOperationException)
                {
                }
            }

            // The grandchild is dead now, so the pipes close and this cannot hang.
            child.Dispose();
        }
    }
}
