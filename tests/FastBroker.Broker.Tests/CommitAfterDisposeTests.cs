using System.Text;
using FastBroker.Testing;

namespace FastBroker.BrokerTests;

/// <summary>
/// A commit after the subscription was disposed stores nothing (its position file is closed and its name may already
/// be another subscription's). <c>Commit(topic, offset)</c> said so with <see cref="ObjectDisposedException"/>, while
/// <c>Commit()</c> returned as if it had saved the positions: a consumer that committed after its dispose believed its
/// progress kept, and got the messages again after a restart.
/// </summary>
public class CommitAfterDisposeTests
{
    [Fact]
    public async Task Every_commit_of_a_disposed_durable_subscription_throws_and_stores_nothing()
    {
        await using var f = await BrokerFixture.StartAsync();
        for (var i = 0; i < 10; i++)
        {
            await f.Broker.PublishAsync("audit", Encoding.UTF8.GetBytes($"e{i}"));
        }

        var options = new SubscriptionOptions { DurableName = "auditor", Start = StartPosition.Committed };
        var sub = f.Broker.Subscribe("audit", options);
        var c = new Collected();
        var r = new Recorder(c);
        Eventually.True(() =>
        {
            sub.Fetch(10 - c.Items.Count, ref r);
            return c.Items.Count == 10;
        }, "10 read");
        sub.Dispose();

        Assert.Throws<ObjectDisposedException>(() => sub.Commit());
        Assert.Throws<ObjectDisposedException>(() => sub.Commit("audit", 10));
        await Assert.ThrowsAsync<ObjectDisposedException>(async () => await sub.CommitAsync("audit", 10));

        using var reopened = f.Broker.Subscribe("audit", options);
        Assert.Null(reopened.CommittedOffset("audit"));
    }

    [Fact]
    public async Task Commit_of_a_disposed_subscription_that_is_not_durable_throws_too()
    {
        await using var f = await BrokerFixture.StartAsync();
        var sub = f.Broker.Subscribe("audit", new SubscriptionOptions());
        sub.Commit(); // a no-op while open, as documented
        sub.Dispose();
        Assert.Throws<ObjectDisposedException>(() => sub.Commit());
    }
}
