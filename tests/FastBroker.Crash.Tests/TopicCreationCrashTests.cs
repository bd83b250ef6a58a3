using System.Collections.Concurrent;
using System.Globalization;
using FastBroker.Testing;
using Xunit.Abstractions;

namespace FastBroker.Crash.Tests;

/// <summary>
/// kill -9 of a process creating a topic, at each step on disk of the creation in turn (the crash host waits at the
/// step named to be killed): every topic whose creation returned reopens with its settings, a <c>topic.meta</c> is never
/// on disk without its journal, and the topic the kill cut short opens only when its <c>topic.meta</c> was on disk
/// (the creation committed); otherwise what the creation left is removed at the next open (and logged), never opened as
/// a topic nobody was told exists nor left on disk unopened, and the same creation succeeds afterwards.
/// </summary>
public class TopicCreationCrashTests(ITestOutputHelper output)
{
    private static readonly TimeSpan s_deadline = TimeSpan.FromSeconds(60);

    [Fact]
    public async Task A_kill_at_each_step_of_a_topic_s_creation_opens_every_created_topic_and_the_one_cut_short_whole_or_not_at_all()
    {
        Assert.True(File.Exists(BrokerCrashTests.HostPath), $"crash host not built next to the tests: {BrokerCrashTests.HostPath}");
        var steps = Steps();
        output.WriteLine(string.Join('\n', steps));
        Assert.Contains(steps, s => s.StartsWith("open journal in ", StringComparison.Ordinal));

        var failures = new List<string>();
        var outcomes = new List<string>();
        for (var kill = 0; kill <= steps.Count; kill++)
        {
            var at = kill < steps.Count ? $"a kill before '{steps[kill]}'" : "a kill after the creation returned";
            try
            {
                var outcome = await Round(kill, kill < steps.Count ? steps[kill] : null, at);
                outcomes.Add(outcome);
                output.WriteLine($"{at}: {outcome}");
            }
            catch (Xunit.Sdk.XunitException e)
            {
                failures.Add(e.Message);
            }
        }

        Assert.True(failures.Count == 0, $"{failures.Count} of {steps.Count + 1} rounds:\n{string.Join("\n", failures)}");

        // The steps reach both outcomes: a creation cut short before its commit, and one cut short after it.
        Assert.Contains("not opened", outcomes);
        Assert.Contains("opened", outcomes);
    }

    /// <summary>The steps on disk of the creation of topic t2, as the crash host names them.</summary>
    private static List<string> Steps()
    {
        using var dir = new TempDirectory("fastbroker-topic-creation-steps");
        using var child = ChildProcess.StartDotnet(BrokerCrashTests.HostPath, dir.Path, "topics", "steps");
        Assert.True(child.WaitForExit(s_deadline), "the crash host lists the creation's steps");
        Assert.True(child.ExitCode == 0, $"the crash host listing the steps exited with {child.ExitCode}: {child.Errors}");
        return [.. child.Lines.Where(l => l.StartsWith("S ", StringComparison.Ordinal)).Select(l => l[2..])];
    }

    /// <summary>One kill before <paramref name="step"/> (none: after the creation returned); "opened" or "not opened" for t2.</summary>
    private static async Task<string> Round(int kill, string? step, string at)
    {
        using var dir = new TempDirectory("fastbroker-topic-creation-crash");
        var cut = TopicCreationCrash.Name(TopicCreationCrash.Before);
        var acknowledged = new HashSet<string>(StringComparer.Ordinal);
        using (var child = ChildProcess.StartDotnet(BrokerCrashTests.HostPath, dir.Path, "topics", "kill", kill.ToString(CultureInfo.InvariantCulture)))
        {
            var waitsFor = step is null ? $"T {TopicCreationCrash.Before}" : $"at {step}";
            Eventually.True(() => child.Lines.Contains(waitsFor) || child.HasExited, $"{at}: the crash host reaches '{waitsFor}'", s_deadline);
            Assert.False(child.HasExited, $"{at}: the crash host exited before '{waitsFor}': {string.Join(" | ", child.Lines)} {child.Errors}");
            child.Kill();
            foreach (var line in child.Lines.Where(l => l.StartsWith("T ", StringComparison.Ordinal)))
            {
                acknowledged.Add("t" + line[2..]);
            }
        }

        Assert.Equal(TopicCreationCrash.Before + (step is null ? 1 : 0), acknowledged.Count);
        var topics = Path.Combine(dir.Path, "topics");
        var cutDir = Path.Combine(topics, cut);
        var left = Directory.Exists(cutDir) ? string.Join(", ", Directory.GetFileSystemEntries(cutDir).Select(Path.GetFileName).Order(StringComparer.Ordinal)) : null;
        var committed = File.Exists(Path.Combine(cutDir, "topic.meta"));
        Assert.True(!committed || Directory.Exists(Path.Combine(cutDir, "journal")), $"{at}: '{cut}' has topic.meta without a journal ({left}): it would open as a topic whose creation did not complete");

        var log = new ConcurrentQueue<string>();
        await using var broker = await Broker.OpenAsync(BrokerOptions.Default with { DataDirectory = dir.Path, Log = log.Enqueue });
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

        // The name is free or holds the same settings: the creation succeeds now, the topic whole on disk.
        broker.CreateTopic(cut, TopicCreationCrash.Topic);
        Assert.Equal(["journal", "topic.meta"], Directory.GetFileSystemEntries(cutDir).Select(p => Path.GetFileName(p)!).Order(StringComparer.Ordinal));
        return committed ? "opened" : "not opened";
    }
}
