using FastBroker.Journal.Internal;

namespace FastBroker.Journal.CrashHost;

/// <summary>
/// <c>FastBroker.Journal.CrashHost &lt;dir&gt; keep-aside &lt;point&gt; &lt;root&gt;</c>: the open a standby makes of a
/// damaged copy (StandbyReplica.OpenJournal): a plain open, and on a <see cref="JournalCorruptionException"/>
/// <see cref="DamagedSegments.KeepAsideOnce"/> into root (label "t"), then an open with
/// <see cref="JournalOptions.RepairCorruption"/>. At the point named it prints "at &lt;point&gt;" and waits to be
/// killed: "file" (the first file kept, the directory partial), "kept" (the keep done, the cut not started), or a
/// <see cref="RepairStep"/>; "none" runs through. Prints "kept &lt;dir&gt; &lt;before&gt;" after the keep and "opened
/// &lt;next offset&gt;" at the end, then exits 0.
/// </summary>
public static class KeepAsideCrash
{
    /// <summary>Runs the mode; the exit code.</summary>
    public static int Run(string directory, string point, string root)
    {
        using var never = new ManualResetEventSlim();
        void At(string here)
        {
            if (here == point)
            {
                Console.Out.WriteLine("at " + here);
                Console.Out.Flush();
                never.Wait(); // until the test's SIGKILL
            }
        }

        try
        {
            using var clean = JournalLog.Open(directory, CrashPayload.Options);
            Console.Out.WriteLine($"opened {clean.NextOffset}");
            return 0;
        }
        catch (JournalCorruptionException e)
        {
            var kept = DamagedSegments.KeepAsideOnceWithSteps(directory, e.FilePath, root, "t", DateTimeOffset.UtcNow, s => At(s.StartsWith("kept ", StringComparison.Ordinal) ? "file" : s));
            Console.Out.WriteLine($"kept {kept.Directory} {kept.KeptBefore}");
            Console.Out.Flush();
            At("kept");
        }

        using var journal = JournalLog.Open(directory, CrashPayload.Options with { RepairCorruption = true, RepairStepHook = s => At(s.ToString()) });
        Console.Out.WriteLine($"opened {journal.NextOffset}");
        return 0;
    }
}
