using System.Text;
using FastBroker.Testing;
using Xunit.Abstractions;

namespace FastBroker.BrokerTests;

public class ManyTopicsTests(ITestOutputHelper output)
{
    /// <summary>
    /// Topics per instrument are the normal case: a hundred quiet persistent topics with the default 64 MiB segments
    /// must not each hold a whole segment of disk and a pre-faulted spare (that was 128 MiB a topic: the disk here
    /// would be full after eight of them).
    /// </summary>
    [Fact]
    public async Task A_hundred_quiet_persistent_topics_with_64_MiB_segments_fit_on_a_1_GiB_disk_and_survive_a_restart()
    {
        using var dir = new TempDirectory();
        using var fs = TestMount.TryMount(dir.Combine("fs"), "1g", out var why);
        if (fs is null)
        {
            output.WriteLine($"SKIPPED: cannot mount a tmpfs ({why}); this test needs root or CAP_SYS_ADMIN.");
            return;
        }

        const int topics = 100;
        var options = BrokerOptions.Default with { DataDirectory = Path.Combine(fs.Path, "data") };
        Assert.Equal(64L << 20, options.DefaultTopicOptions.SegmentBytes);
        await using (var broker = await Broker.OpenAsync(options))
        {
            for (var i = 0; i < topics; i++)
            {
                Assert.Equal(0, await broker.PublishAsync($"quiet.{i}", Encoding.UTF8.GetBytes($"m{i}")));
            }

            output.WriteLine($"{topics} topics: {fs.Used >> 20} MiB used of 1 GiB");
        }

        await using (var broker = await Broker.OpenAsync(options))
        {
            var heads = broker.GetSnapshot().Topics.Where(t => t.Name.StartsWith("quiet.", StringComparison.Ordinal)).ToList();
            Assert.Equal(topics, heads.Count);
            Assert.All(heads, t => Assert.Equal(1, t.Head));
            using var sub = broker.Subscribe("quiet.>", new SubscriptionOptions { Start = StartPosition.Earliest });
            var c = new Collected();
            var r = new Recorder(c);
            Eventually.True(() =>
            {
                sub.Fetch(1000, ref r);
                return c.Items.Count == topics;
            }, "every topic's message after the restart");
            Assert.Equal(Enumerable.Range(0, topics).Select(i => $"m{i}").Order(), c.Items.Select(x => x.Payload).Order());
        }
    }
}
