using System.Collections.Concurrent;
using System.Globalization;
using FastBroker.Testing;
using Xunit.Abstractions;

namespace FastBroker.Crash.Tests;

/// <summary>
/// kill -9 of a process creating topics one after another: every topic whose creation returned reopens with its
/// settings, a <c>topic.meta</c> is never on disk without its journal, and what the creation the kill cut short left is
/// removed at the next open (and logged), never opened as a topic nobody was told exists.
/// </summary>
public class TopicCreationCrashTests(ITestOutputHelper output)
{
    private const int Rounds = 12; // the kill lands before, in or after a creation by chance: each round is one draw

    [Fact]
    public async Task Kill9_while_creating_topics_opens_every_created_topic_and_removes_the_one_cut_short()
    {
        Assert.True(File.Exists(BrokerCrashTests.HostPath), $"crash host not built next to the tests: {BrokerCrashTests.HostPath}");
        var seed = Environment.TickCount;
        var random = new Random(seed);
        output.WriteLine($"seed {seed}, {Rounds} rounds");
        for (var round = 0; round < Rounds; round++)
        {
            using var dir = new TempDirectory("fastbroker-topic-creation-crash");
            var created = new HashSet<string>(StringComparer.Ordinal);
            using (var child = ChildProcess.StartDotnet(BrokerCrashTests.HostPath, dir.Path, "topics"))
            {
                var target = 3 + random.Next(0, 40);
                Eventually.True(() => child.LineCount > target || child.HasExited, $"round {round}: the child creates {target} topics", TimeSpan.FromSeconds(60));
                Assert.False(child.HasExited, $"round {round}: child exited early: {child.Errors}");
                child.Kill();
                foreach (var line in child.Lines.Where(l => l.StartsWith("T ", StringComparison.Ordinal)))
                {
                    created.Add("t" + line[2..]);
                }
            }

            Assert.NotEmpty(created);
            var topics = Path.Combine(dir.Path, "topics");
            var next = "t" + created.Count.ToString(CultureInfo.InvariantCulture);
            var uncommitted = new List<string>();
            foreach (var topicDir in Directory.GetDirectories(topics))
            {
                var name = Path.GetFileName(topicDir);
                var entries = string.Join(", ", Directory.GetFileSystemEntries(topicDir).Select(Path.GetFileName).Order(StringComparer.Ordinal));
                Assert.True(created.Contains(name) || name == next, $"round {round}: '{name}' on disk, {created.Count} topics created");
                if (!created.Contains(name))
                {
                    output.WriteLine($"round {round}: next '{name}': {entries}");
                }

                if (File.Exists(Path.Combine(topicDir, "topic.meta")))
                {
                    Assert.True(Directory.Exists(Path.Combine(topicDir, "journal")), $"round {round}: '{name}' has topic.meta without a journal ({entries}): it would open as a topic whose creation did not complete");
                }
                else
                {
                    Assert.False(created.Contains(name), $"round {round}: '{name}' was created but has no topic.meta ({entries})");
                    uncommitted.Add(name);
                }
            }

            var log = new ConcurrentQueue<string>();
            await using var broker = await Broker.OpenAsync(BrokerOptions.Default with { DataDirectory = dir.Path, Log = log.Enqueue });
            var opened = broker.GetSnapshot().Topics.Select(t => t.Name).ToHashSet(StringComparer.Ordinal);
            foreach (var name in created)
            {
                Assert.True(opened.Contains(name), $"round {round}: created topic '{name}' did not reopen");
                broker.CreateTopic(name, TopicCreationCrash.Topic); // refused (TopicConflict) had it reopened with other settings
            }

            Assert.True(opened.IsSubsetOf(created.Append(next)), $"round {round}: opened {string.Join(", ", opened.Except(created))} beside the {created.Count} created");
            var leftovers = Directory.GetDirectories(topics).Select(d => Path.GetFileName(d)!).Where(n => !opened.Contains(n)).ToList();
            Assert.True(leftovers.Count == 0, $"round {round}: left on disk and not opened: {string.Join(", ", leftovers)}");
            foreach (var name in uncommitted)
            {
                Assert.Single(log, l => l.Contains($"topic '{name}'", StringComparison.Ordinal) && l.Contains("creation that did not complete", StringComparison.Ordinal));
            }
        }
    }
}
