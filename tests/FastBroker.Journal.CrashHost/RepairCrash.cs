using FastBroker.Journal.Internal;

namespace FastBroker.Journal.CrashHost;

/// <summary>
/// <c>FastBroker.Journal.CrashHost &lt;dir&gt; repair &lt;step&gt; [repair-corruption]</c>: opens the journal in dir (with
/// <see cref="JournalOptions.RepairCorruption"/> when asked) and, when its repair reaches the <see cref="RepairStep"/>
/// named, prints "at &lt;step&gt;" and waits to be killed. An open that never gets there prints "opened &lt;report&gt;" and exits 0.
/// </summary>
public static class RepairCrash
{
    /// <summary>Runs the mode; the exit code.</summary>
    public static int Run(string directory, string stepName, bool repairCorruption)
    {
        var step = Enum.Parse<RepairStep>(stepName);
        using var never = new ManualResetEventSlim();
        var options = CrashPayload.Options with
        {
            RepairCorruption = repairCorruption,
            RepairStepHook = s =>
            {
                if (s == step)
                {
                    Console.Out.WriteLine("at " + s);
                    Console.Out.Flush();
                    never.Wait(); // until the test's SIGKILL
                }
            },
        };
        using var journal = JournalLog.Open(directory, options);
        Console.Out.WriteLine("opened " + journal.Recovery);
        return 0;
    }
}
