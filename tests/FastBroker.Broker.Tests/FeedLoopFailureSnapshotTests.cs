using FastBroker.Testing;

namespace FastBroker.BrokerTests;

/// <summary>A work-queue group's feed-loop failures are in its <see cref="GroupSnapshot"/>, where an operator sees them.</summary>
public class FeedLoopFailureSnapshotTests
{
    [Fact]
    public async Task The_groups_snapshot_counts_its_feed_loop_failures()
    {
        await using var f = await BrokerFixture.StartAsync(o => o with { Log = _ => { } });
        var b = f.Broker;
        var calls = 0;
        b.FeedLoopHook = name =>
        {
            if (name == "g" && Interlocked.Increment(ref calls) <= 2)
            {
                throw new InvalidOperationException("test: the feed loop's pump failed");
            }
        };

        using var member = b.JoinGroup("feed-snapshot", "g", GroupOptions.Default with { Prefetch = 10 });
        try
        {
            Assert.Equal(0, b.GetSnapshot().Groups.Single(g => g.Group == "g").FeedLoopFailures);
            await b.PublishAsync("feed-snapshot", BrokerFixture.Utf8("m1"));
            await Eventually.TrueAsync(() => member.RuntimeGroup.FeedLoopFailures == 2 && member.RuntimeGroup.FeedLoopRunning, "the feed loop fails twice and runs again");
            var snapshot = b.GetSnapshot().Groups.Single(g => g.Group == "g");
            Assert.True(snapshot.FeedLoopFailures == 2, $"the group's snapshot says {snapshot.FeedLoopFailures} feed loop failures, the group counted {member.RuntimeGroup.FeedLoopFailures}");
        }
        finally
        {
            b.FeedLoopHook = null;
        }
    }
}
