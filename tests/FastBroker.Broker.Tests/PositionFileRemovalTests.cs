using System.Collections.Concurrent;
using System.Text;

namespace FastBroker.BrokerTests;

/// <summary>
/// A durable subscription's position file removed while a subscriber holds its name (docs/broker.md, "Subscriptions
/// and work-queue groups": an operator starting it anew): the subscriber keeps its mapping of the removed file, so what
/// it commits after the removal goes to no file anyone can open and is dropped when it closes; the broker says so then.
/// </summary>
public sealed class PositionFileRemovalTests
{
    [Fact]
    public async Task A_position_file_removed_while_subscribed_is_logged_when_the_subscription_closes_and_the_name_starts_anew()
    {
        var log = new ConcurrentQueue<string>();
        await using var f = await BrokerFixture.StartAsync(o => o with { Log = log.Enqueue });
        for (var i = 0; i < 5; i++)
        {
            await f.Broker.PublishAsync("jobs", Encoding.UTF8.GetBytes($"job{i}"));
        }

        var path = Path.Combine(f.DataDirectory, "subscriptions", "fresh.pos");
        var options = SubscriptionOptions.Default with { DurableName = "fresh", Start = StartPosition.Earliest };
        using (var s = f.Broker.Subscribe("jobs", options))
        {
            s.Commit("jobs", 2);
            File.Delete(path); // the operator's removal, while the subscriber holds the name
            s.Commit("jobs", 4);
            Assert.Equal(4, s.CommittedOffset("jobs")); // the holder goes on with its own mapping
            Assert.DoesNotContain(log, l => l.Contains("was removed while it was subscribed", StringComparison.Ordinal));
        }

        Assert.False(File.Exists(path), $"{path} is made again by nothing but the next subscription");
        var line = log.FirstOrDefault(l => l.Contains("subscription 'fresh': its position file", StringComparison.Ordinal));
        Assert.True(
            line is not null && line.Contains($"{path} was removed while it was subscribed", StringComparison.Ordinal) && line.Contains("starts anew", StringComparison.Ordinal),
            $"no line said fresh.pos was removed while it was subscribed; log: {string.Join(" | ", log)}");

        await f.RestartAsync(o => o with { Log = log.Enqueue });
        using var again = f.Broker.Subscribe("jobs", options);
        Assert.Null(again.CommittedOffset("jobs")); // the commit of 4 went with the removed file: the name starts anew
    }
}
