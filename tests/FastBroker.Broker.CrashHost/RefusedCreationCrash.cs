using System.Globalization;
using FastBroker;

/// <summary>
/// Mode <c>refused &lt;f&gt; steps</c>: creates "t0" and "t1" (as <see cref="TopicCreationCrash"/> does), then "t2",
/// whose creation fails at its step <c>f</c> (from 0; "F &lt;step&gt;" is printed and an <see cref="IOException"/>
/// thrown there, as a full disk would fail it), and prints "S &lt;step&gt;" before each step on disk of the removal of
/// what the refused creation made, then "R &lt;reason&gt;" once the creation was refused, and exits 0.
/// Mode <c>refused &lt;f&gt; kill &lt;k&gt;</c>: the same, but at the removal's step <c>k</c> (from 0) it prints
/// "at &lt;step&gt;" and waits there to be killed; with <c>k</c> past the removal's last step it waits after "R".
/// Exits 2 when the creation was not refused (no step <c>f</c>).
/// </summary>
public static class RefusedCreationCrash
{
    public static async Task<int> RunAsync(string dir, int fail, string mode, int kill, Action<string> say)
    {
        await using var broker = await Broker.OpenAsync(BrokerOptions.Default with { DataDirectory = dir });
        for (var n = 0; n < TopicCreationCrash.Before; n++)
        {
            broker.CreateTopic(TopicCreationCrash.Name(n), TopicCreationCrash.Topic);
            say("T " + n.ToString(CultureInfo.InvariantCulture));
        }

        using var never = new ManualResetEventSlim();
        var step = 0;
        var removal = -1; // the removal's steps, counted from the failure on
        broker.Topics.FileStep = what =>
        {
            var named = what.Replace(dir, "<data>", StringComparison.Ordinal);
            if (removal < 0)
            {
                if (step++ == fail)
                {
                    removal = 0;
                    say("F " + named);
                    throw new IOException($"injected failure before '{named}'");
                }

                return;
            }

            if (mode == "steps")
            {
                say("S " + named);
            }
            else if (removal++ == kill)
            {
                say("at " + named);
                never.Wait(); // until the test's SIGKILL
            }
        };

        try
        {
            broker.CreateTopic(TopicCreationCrash.Name(TopicCreationCrash.Before), TopicCreationCrash.Topic);
            return 2;
        }
        catch (Exception e) when (e is IOException or BrokerException)
        {
            say("R " + e.Message.ReplaceLineEndings(" "));
        }

        broker.Topics.FileStep = null;
        if (mode == "steps")
        {
            return 0;
        }

        never.Wait();
        return 0;
    }
}
