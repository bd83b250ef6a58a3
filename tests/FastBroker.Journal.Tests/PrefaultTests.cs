using FastBroker.Testing;

namespace FastBroker.Journal.Tests;

public class PrefaultTests
{
    [Fact] // Linux only, like the journal (mmap, madvise, SCHED_IDLE)
    public void A_spare_segment_is_prepared_at_idle_priority_and_removed_on_dispose()
    {
        using var dir = new TempDirectory();
        var journal = JournalLog.Open(dir.Path, AppendReadTests.Small with { PrefaultSegments = true });
        try
        {
            Eventually.True(() => Directory.GetFiles(dir.Path, "spare-*.prep").Length == 1, "a spare segment is prepared in the background");

            // Every journal's pre-fault thread (the kernel keeps 15 characters of the name) is SCHED_IDLE (policy 5),
            // so it never takes a core from the writer, publishers or consumers.
            var policies = PoliciesOf("journal-prefaul");
            Assert.NotEmpty(policies);
            Assert.All(policies, p => Assert.Equal(5, p));
        }
        finally
        {
            journal.Dispose();
        }

        Assert.Empty(Directory.GetFiles(dir.Path, "spare-*.prep"));
    }

    /// <summary>The scheduling policy (field 41 of /proc/self/task/N/stat) of this process's threads called <paramref name="name"/>.</summary>
    private static List<int> PoliciesOf(string name)
    {
        var policies = new List<int>();
        foreach (var task in Directory.GetDirectories("/proc/self/task"))
        {
            try
            {
                if (File.ReadAllText(Path.Combine(task, "comm")).TrimEnd('\n') != name)
                {
                    continue;
                }

                var stat = File.ReadAllText(Path.Combine(task, "stat"));
                var fields = stat[(stat.LastIndexOf(')') + 2)..].Split(' ');
                policies.Add(int.Parse(fields[41 - 3], System.Globalization.CultureInfo.InvariantCulture));
            }
            catch (IOException)
            {
                // The thread ended meanwhile.
            }
        }

        return policies;
    }
}
