using System.Collections.Concurrent;
using System.Globalization;
using FastBroker.Testing;
using Xunit.Abstractions;

namespace FastBroker.Crash.Tests;

/// <summary>
/// kill -9 of a process removing what a refused topic creation made (the creation fails at one of its steps on disk,
/// as a full disk would fail it, and the broker removes what it made), at each step of that removal in turn, for a
/// failure at each step of the creation: the next open never finds a <c>topic.meta</c> without its journal nor a journal
/// without settings, opens the refused topic only when its <c>topic.meta</c> was still on disk (killed before the
/// removal took the commit back), removes whatever else the removal left (and logs it), leaves nothing unopened, and
/// the same creation then succeeds with an empty journal: nothing the refused one made is taken over.
/// </summary>
public class RefusedTopicCreationCrashTests(ITestOutputHelper output)
{
    private static readonly TimeSpan s_deadline = TimeSpan.FromSeconds(60);

    [Fact]
    public async Task A_kill_at_each_step_of_the_removal_of_a_refused_creation_leaves_the_topic_whole_or_not_at_all_and_creatable()
    {
        Assert.True(File.Exists(BrokerCrashTests.HostPath), $"crash host not built next to the tests: {BrokerCrashTests.HostPath}");
        var creation = TopicCreationSteps();
        Assert.True(creation.Count > 0 && creation[^1].StartsWith("sync directory ", StringComparison.Ordinal), $"the creation's last step syncs its commit: {string.Join(" | ", creation)}");

        var failures = new List<string>();
        var outcomes = new List<string>();
        var rounds = 0;
        for (var fail = 0; fail < creation.Count; fail++)
        {
            var removal = RemovalSteps(fail);
            output.WriteLine($"refused before '{creation[fail]}': {string.Join(" | ", removal)}");
            for (var kill = 0; kill <= removal.Count; kill++)
            {
                rounds++;
                var at = $"refused before '{creation[fail]}', {(kill < removal.Count ? $"a kill before '{removal[kill]}'" : "a kill after the refusal returned")}";
                try
                {
                    var outcome = await Round(fail, kill, kill < removal.Count ? removal[kill] : null, at);
                    outcomes.Add(outcome);
                    output.WriteLine($"{at}: {outcome}");
                }
                catch (Xunit.Sdk.XunitException e)
                {
                    failures.Add(e.Message);
                }
            }
        }

        Assert.True(failures.Count == 0, $"{failures.Count} of {rounds} rounds:\n{string.Join("\n", failures)}");

        // The removal of a creation refused after its commit is cut short before it takes the commit back (the topic
        // opens) and after (it does not).
        Assert.Contains("opened", outcomes);
        Assert.Contains("not opened", outcomes);
    }

    /// <summary>The steps on disk of the creation of topic t2, as the crash host names them.</summary>
    private static List<string> TopicCreationSteps() => Listed("S ", "topics", "steps");

    /// <summary>The steps on disk of the removal of what t2's creation made, refused at its step <paramref name="fail"/>.</summary>
    private static List<string> RemovalSteps(int fail) => Listed("S ", "refused", fail.ToString(CultureInfo.InvariantCulture), "steps");

    private static List<string> Listed(string prefix, params string[] mode)
    {
        using var dir = new TempDirectory("fastbroker-refused-creation-steps");
        using var child = ChildProcess.StartDotnet(BrokerCrashTests.HostPath, [dir.Path, .. mode]);
        Assert.True(child.WaitForExit(s_deadline), $"the crash host lists the steps ({string.Join(' ', mode)})");
        Assert.True(child.ExitCode == 0, $"the crash host listing the steps ({string.Join(' ', mode)}) exited with {child.ExitCode}: {string.Join(" | ", child.Lines)} {child.Errors}");
        return [.. child.Lines.Where(l => l.StartsWith(prefix, StringComparison.Ordinal)).Select(l => l[prefix.Length..])];
    }

    /// <summary>
    /// One kill before the removal's <paramref name="step"/> (none: after the refusal returned); "opened" or
    /// "not opened" for t2.
    /// </summary>
    private static async Task<string> Round(int fail, int kill, string? step, string at)
    {
        using var dir = new TempDirectory("fastbroker-refused-creation-crash");
        var cut = TopicCreationCrash.Name(TopicCreationCrash.Before);
        var acknowledged = new HashSet<string>(StringComparer.Ordinal);
        using (var child = ChildProcess.StartDotnet(BrokerCrashTests.HostPath, dir.Path, "refused", fail.ToString(CultureInfo.InvariantCulture), "kill", kill.ToString(CultureInfo.InvariantCulture)))
        {
            var waitsFor = step is null ? "R " : $"at {step}";
            Eventually.True(() => child.Lines.Any(l => l.StartsWith(waitsFor, StringComparison.Ordinal)) || child.HasExited, $"{at}: the crash host reaches '{waitsFor}'", s_deadline);
            if (child.HasExited)
            {
                Assert.Fail($"{at}: the crash host exited ({child.ExitCode}) before '{waitsFor}': {string.Join(" | ", child.Lines)} {child.Errors}");
            }
            child.Kill();
            foreach (var line in child.Lines.Where(l => l.StartsWith("T ", StringComparison.Ordinal)))
            {
                acknowledged.Add("t" + line[2..]);
            }
        }

        Assert.Equal(TopicCreationCrash.Before, acknowledged.Count);
        var topics = Path.Combine(dir.Path, "topics");
        var cutDir = Path.Combine(topics, cut);
        var left = Directory.Exists(cutDir) ? string.Join(", ", Directory.GetFileSystemEntries(cutDir).Select(Path.GetFileName).Order(StringComparer.Ordinal)) : null;
        var committed = File.Exists(Path.Combine(cutDir, "topic.meta"));
        Assert.True(!committed || Directory.Exists(Path.Combine(cutDir, "journal")), $"{at}: '{cut}' has topic.meta without a journal ({left}): it would open as a topic whose creation did not complete");
        Assert.True(step is not null || left is null, $"{at}: the refused creation's removal returned and left '{cut}' ({left})");

        var log = new ConcurrentQueue<string>();
        Broker broker;
        try
        {
            broker = await Broker.OpenAsync(BrokerOptions.Default with { DataDirectory = dir.Path, Log = log.Enqueue });
        }
        catch (BrokerException e)
        {
            Assert.Fail($"{at}: the broker does not open ('{cut}' held {left ?? "no directory"}): {e.Message}");
            throw;
        }

        await using (broker)
        {
            var opened = broker.GetSnapshot().Topics.ToDictionary(t => t.Name, StringComparer.Ordinal);
            foreach (var name in acknowledged)
            {
                Assert.True(opened.TryGetValue(name, out var topic) && topic.Head == 0, $"{at}: created topic '{name}' did not reopen empty");
                broker.CreateTopic(name, TopicCreationCrash.Topic); // refused (TopicConflict) had it reopened with other settings
            }

            var leftovers = Directory.GetDirectories(topics).Select(d => Path.GetFileName(d)!).Where(n => !opened.ContainsKey(n)).ToList();
            Assert.True(leftovers.Count == 0, $"{at}: left on disk and not opened: {string.Join(", ", leftovers.Select(n => $"{n} ({string.Join(", ", Directory.GetFileSystemEntries(Path.Combine(topics, n)).Select(Path.GetFileName))})"))}");
            Assert.True(opened.ContainsKey(cut) == committed, $"{at}: '{cut}' ({left ?? "no directory"}) was {(committed ? "not " : "")}opened");
            var reported = log.Count(l => l.Contains($"topic '{cut}'", StringComparison.Ordinal) && l.Contains("creation that did not complete", StringComparison.Ordinal));
            Assert.True(reported == (left is not null && !committed ? 1 : 0), $"{at}: {reported} lines said '{cut}' was left by a creation that did not complete ({left ?? "no directory"}); log: {string.Join(" | ", log)}");

            // The name is free or holds the same settings: the creation succeeds now, whole on disk and empty.
            broker.CreateTopic(cut, TopicCreationCrash.Topic);
            Assert.Equal(["journal", "topic.meta"], Directory.GetFileSystemEntries(cutDir).Select(p => Path.GetFileName(p)!).Order(StringComparer.Ordinal));
            var created = broker.GetSnapshot().Topics.Single(t => t.Name == cut);
            Assert.True(created.Head == 0 && created.Tail == 0, $"{at}: '{cut}' created after the restart is not empty (tail {created.Tail}, head {created.Head})");
            return committed ? "opened" : "not opened";
        }
    }
}
