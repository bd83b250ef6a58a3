using System.Globalization;
using FastBroker;

/// <summary>
/// Mode <c>topics steps</c>: creates persistent topics "t0" and "t1", then "t2" printing "S &lt;step&gt;" before each
/// step on disk of its creation (the data directory written as <c>&lt;data&gt;</c>), and exits 0.
/// Mode <c>topics kill &lt;k&gt;</c>: creates "t0" and "t1", then "t2", printing "T &lt;n&gt;" after the creation of
/// "t&lt;n&gt;" returned (the broker acknowledged it); at the creation's step <c>k</c> (from 0) it prints
/// "at &lt;step&gt;" and waits there to be killed. With <c>k</c> past the last step, it waits to be killed after "T 2".
/// </summary>
public static class TopicCreationCrash
{
    /// <summary>The topics created before the one the kill cuts short.</summary>
    public const int Before = 2;

    /// <summary>The settings of every topic the host creates (the test checks that each reopens with them).</summary>
    public static TopicOptions Topic { get; } = TopicOptions.Default with { Durability = Durability.Fsynced, SegmentBytes = 1 << 20, MaxMessageBytes = 4096 };

    /// <summary>The name of topic <paramref name="n"/>.</summary>
    public static string Name(int n) => "t" + n.ToString(CultureInfo.InvariantCulture);

    public static async Task<int> RunAsync(string dir, string mode, int kill, Action<string> say)
    {
        await using var broker = await Broker.OpenAsync(BrokerOptions.Default with { DataDirectory = dir });
        for (var n = 0; n < Before; n++)
        {
            broker.CreateTopic(Name(n), Topic);
            say("T " + n.ToString(CultureInfo.InvariantCulture));
        }

        using var never = new ManualResetEventSlim();
        var step = 0;
        broker.Topics.FileStep = what =>
        {
            var named = what.Replace(dir, "<data>", StringComparison.Ordinal);
            if (mode == "steps")
            {
                say("S " + named);
            }
            else if (step++ == kill)
            {
                say("at " + named);
                never.Wait(); // until the test's SIGKILL
            }
        };
        broker.CreateTopic(Name(Before), Topic);
        broker.Topics.FileStep = null;
        if (mode == "steps")
        {
            return 0;
        }

        say("T " + Before.ToString(CultureInfo.InvariantCulture));
        never.Wait();
        return 0;
    }
}
