using System.Diagnostics;
using System.Globalization;
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

    /// <summary>
    /// A flock belongs to the open file, not to the process that took it: here <c>flock(1)</c> takes it on a descriptor
    /// its shell opened and exits, the shell starts a child that inherits the descriptor and exits too, and the child
    /// (a real process outside this one, with a bounded lifetime) holds the lock alone. <c>/proc/locks</c> still lists the
    /// lock under the PID of the process that took it, which no longer runs: the lock on the inode is what counts, so the
    /// journal is open until the child lets go, and not after.
    /// </summary>
    [Fact]
    public void A_lock_held_by_a_child_that_inherited_it_after_the_locker_exited_is_open()
    {
        using var dir = new TempDirectory();
        var lockFile = Path.Combine(dir.Path, "journal.lock");
        JournalLog.Open(dir.Path, AppendReadTests.Small).Dispose(); // the lock file, with no one holding it
        Assert.False(JournalInspector.IsOpen(dir.Path));

        // fd 9 opened by the shell, locked by flock (which exits), inherited by sleep; the shell exits after printing sleep's PID.
        var start = new ProcessStartInfo("bash", ["-c", "exec 9<\"$1\" && flock -x -n 9 && { sleep 120 <&- >/dev/null 2>&1 & echo $!; }", "lock-holder", lockFile])
        {
            RedirectStandardOutput = true,
            UseShellExecute = false,
        };
        var holder = 0;
        using (var shell = Process.Start(start)!)
        {
            var line = shell.StandardOutput.ReadLine();
            Assert.True(shell.WaitForExit(TimeSpan.FromSeconds(30)), "the shell exits");
            Assert.True(shell.ExitCode == 0 && int.TryParse(line, NumberStyles.None, CultureInfo.InvariantCulture, out holder), $"the shell took the lock and started its child: exit {shell.ExitCode}, printed '{line}'");
        }

        using var child = Process.GetProcessById(holder);
        try
        {
            // The lock is listed under the PID of flock, which exited: neither the holder's nor a live process's.
            Assert.True(Native.TryGetFileId(lockFile, out var id, out _));
            // Every line on the file's inode (a run under load once found two, not kept; a waiter's line has "->").
            var entries = File.ReadLines(FlockTable.ProcLocks).Where(l => l.Contains(string.Create(CultureInfo.InvariantCulture, $"{id.Major:x2}:{id.Minor:x2}:{id.Inode} "), StringComparison.Ordinal)).ToArray();
            var entry = string.Join(" | ", entries);
            Assert.True(entries.Length > 0, $"/proc/locks lists the lock on {lockFile}");
            static string LockerPid(string line) => line.Split(' ', StringSplitOptions.RemoveEmptyEntries).SkipWhile(f => f != "FLOCK").Skip(3).FirstOrDefault() ?? "";
            Assert.True(
                entries.Any(l => !l.Contains("->", StringComparison.Ordinal) && LockerPid(l) != holder.ToString(CultureInfo.InvariantCulture) && !Directory.Exists($"/proc/{LockerPid(l)}")),
                $"the lock is listed under a PID that no longer runs: {entry} (holder {holder})");

            Assert.True(JournalInspector.IsOpen(dir.Path), $"the journal is open: {entry}");
            Assert.Throws<JournalException>(() => JournalLog.Open(dir.Path, AppendReadTests.Small).Dispose());
        }
        finally
        {
            child.Kill(); // not this process's child (its shell exited): its end is seen as the lock going away
        }

        Eventually.True(() => !JournalInspector.IsOpen(dir.Path), "the journal is not open once the holder is gone");
    }

    /// <summary>
    /// Outside the initial PID namespace, a flock <c>/proc/locks</c> leaves out is found through the open files: a
    /// process's <c>fd/N</c> leading to the lock file and its <c>fdinfo/N</c> listing an exclusive flock on it. A proc
    /// tree laid out as the kernel's, in a temporary directory.
    /// </summary>
    [Fact]
    public void A_lock_is_found_through_a_process_open_file_outside_the_initial_pid_namespace()
    {
        using var dir = new TempDirectory();
        var lockFile = Path.Combine(dir.Path, "journal.lock");
        File.WriteAllBytes(lockFile, []);
        var other = Path.Combine(dir.Path, "other");
        File.WriteAllBytes(other, []);
        Assert.True(Native.TryGetFileId(lockFile, out var id, out _));
        var fileId = string.Create(CultureInfo.InvariantCulture, $"{id.Major:x2}:{id.Minor:x2}:{id.Inode}");
        var proc = Path.Combine(dir.Path, "proc");
        Directory.CreateDirectory(Path.Combine(proc, "self", "ns"));
        File.CreateSymbolicLink(Path.Combine(proc, "self", "ns", "pid"), "pid:[4026532286]");
        void Fd(string pid, int fd, string target, string fdinfo)
        {
            Directory.CreateDirectory(Path.Combine(proc, pid, "fd"));
            Directory.CreateDirectory(Path.Combine(proc, pid, "fdinfo"));
            File.CreateSymbolicLink(Path.Combine(proc, pid, "fd", $"{fd}"), target);
            File.WriteAllText(Path.Combine(proc, pid, "fdinfo", $"{fd}"), $"pos:\t0\nflags:\t0100000\nmnt_id:\t46\nino:\t{id.Inode}\n{fdinfo}");
        }

        Fd("7", 3, lockFile, ""); // open, no lock on it
        Fd("7", 4, other, $"lock:\t1: FLOCK  ADVISORY  WRITE 0 {fileId} 0 EOF\n"); // a line naming the inode, on another file's fd
        Fd("8", 9, lockFile, $"lock:\t1: FLOCK  ADVISORY  READ  0 {fileId} 0 EOF\n"); // shared
        Assert.False(FlockTable.HeldThroughAnOpenFile(id, proc));

        Fd("12", 9, lockFile, $"lock:\t1: FLOCK  ADVISORY  WRITE 0 {fileId} 0 EOF\n");
        Assert.True(FlockTable.HeldThroughAnOpenFile(id, proc));

        // In the initial namespace /proc/locks lists every flock: no look.
        File.Delete(Path.Combine(proc, "self", "ns", "pid"));
        File.CreateSymbolicLink(Path.Combine(proc, "self", "ns", "pid"), "pid:[4026531836]");
        Assert.False(FlockTable.HeldThroughAnOpenFile(id, proc));
    }
}
