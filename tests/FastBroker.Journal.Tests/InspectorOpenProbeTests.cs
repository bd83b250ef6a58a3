using FastBroker.Journal.Internal;
using FastBroker.Testing;

namespace FastBroker.Journal.Tests;

/// <summary>
/// <see cref="JournalInspector.IsOpen"/>: a journal is open while a <see cref="JournalLog"/> holds its
/// <c>journal.lock</c>, and asking never takes a lock, so a journal being opened meanwhile is never refused.
/// </summary>
public class InspectorOpenProbeTests
{
    [Fact]
    public void A_journal_is_open_while_a_JournalLog_holds_it_and_not_before_or_after()
    {
        using var dir = new TempDirectory();
        Assert.False(JournalInspector.IsOpen(dir.Path), "no lock file yet");
        using (var journal = JournalLog.Open(dir.Path, AppendReadTests.Small))
        {
            Assert.True(JournalInspector.IsOpen(dir.Path), "a JournalLog has the journal open");
        }

        Assert.True(File.Exists(Path.Combine(dir.Path, "journal.lock")));
        Assert.False(JournalInspector.IsOpen(dir.Path), "the JournalLog is disposed");

        // A shared flock on the lock file (a reader's, not a journal's) does not make the journal open.
        using (new FileStream(Path.Combine(dir.Path, "journal.lock"), FileMode.Open, FileAccess.Read, FileShare.Read))
        {
            Assert.False(JournalInspector.IsOpen(dir.Path), "only a shared flock is held");
        }

        // Another journal's lock is not this one's.
        using var other = new TempDirectory();
        using (JournalLog.Open(other.Path, AppendReadTests.Small))
        {
            Assert.False(JournalInspector.IsOpen(dir.Path), "another directory's journal is open");
        }
    }

    /// <summary>
    /// One thread asks whether the journal is open, over and over, while another opens and closes it: no open fails.
    /// A probe that took a flock (even a shared one, released at once) made an open at that instant fail as "already open".
    /// </summary>
    [Fact]
    public void Asking_whether_a_journal_is_open_never_makes_an_open_of_it_fail()
    {
        using var dir = new TempDirectory();
        JournalLog.Open(dir.Path, AppendReadTests.Small).Dispose(); // the lock file exists from here on
        const int Rounds = 300;
        long probes = 0;
        long seenOpen = 0;
        var stop = false;
        var prober = new Thread(() =>
        {
            while (!Volatile.Read(ref stop))
            {
                if (JournalInspector.IsOpen(dir.Path))
                {
                    Interlocked.Increment(ref seenOpen);
                }

                Interlocked.Increment(ref probes);
            }
        })
        { IsBackground = true, Name = "probe" };
        prober.Start();
        var failures = new List<string>();
        try
        {
            for (var round = 0; round < Rounds; round++)
            {
                // The probes run while the journal is opened: every round waits for the prober to have moved on.
                var before = Interlocked.Read(ref probes);
                Eventually.True(() => Interlocked.Read(ref probes) > before, "the prober runs");
                try
                {
                    JournalLog.Open(dir.Path, AppendReadTests.Small).Dispose();
                }
                catch (JournalException e)
                {
                    failures.Add($"round {round}: {e.Message}");
                }
            }
        }
        finally
        {
            Volatile.Write(ref stop, true);
            prober.Join();
        }

        Assert.True(failures.Count == 0, $"{failures.Count} of {Rounds} open(s) failed while another thread asked whether the journal was open ({probes} probes, {seenOpen} saw it open); the first: {failures.FirstOrDefault()}");
    }

    [Fact]
    public void Only_an_exclusive_flock_held_on_that_file_counts()
    {
        (uint, uint, ulong) file = (0x103, 0x2, 11731436);
        string[] others =
        [
            "1: FLOCK  ADVISORY  READ  4242 103:02:11731436 0 EOF", // shared: not a journal's lock
            "2: FLOCK  ADVISORY  WRITE 4242 103:02:11731437 0 EOF", // another file
            "3: FLOCK  ADVISORY  WRITE 4242 fe:00:11731436 0 EOF", // another device
            "4: POSIX  ADVISORY  WRITE 4242 103:02:11731436 0 EOF", // not a flock
            "5: -> FLOCK  ADVISORY  WRITE 4343 103:02:11731436 0 EOF", // waiting for it, not holding it
            "garbage",
        ];
        Assert.False(FlockTable.HoldsExclusiveFlock(others, file));
        Assert.True(FlockTable.HoldsExclusiveFlock([.. others, "6: FLOCK  ADVISORY  WRITE 4242 103:02:11731436 0 EOF"], file));
        Assert.Null(FlockTable.HoldsExclusiveFlock(file, "/proc/no-such-table"));
    }
}
