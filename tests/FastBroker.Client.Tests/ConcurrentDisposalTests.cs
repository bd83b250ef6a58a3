using FastBroker.Client;
using FastBroker.Protocol;
using static FastBroker.ClientTests.Wire;

namespace FastBroker.ClientTests;

/// <summary>
/// Two <see cref="BrokerClient.DisposeAsync"/> calls at once (a service's shutdown path and its <c>await using</c>):
/// the one that lost the race awaited only the supervisor, which can end before the winner has failed the pending
/// publishes, so it could return while publishes were still pending. Both now return only after that.
/// </summary>
public class ConcurrentDisposalTests
{
    [Fact]
    public async Task Each_of_two_concurrent_disposals_returns_only_after_the_pending_publishes_are_failed()
    {
        await using var server = new SilentServer(); // confirms nothing: every publish stays pending
        for (var round = 0; round < 20; round++)
        {
            var client = await BrokerClient.ConnectAsync(BrokerClientOptions.Default with { Endpoints = [server.Endpoint] });
            var publishes = Enumerable.Range(0, 50).Select(i => client.PublishAsync("t", Bytes($"p{i}")).AsTask()).ToList();
            Assert.Equal(50, client.PendingPublishes);

            using var start = new Barrier(2);
            async Task<int> DisposeAndCountAsync()
            {
                start.SignalAndWait(Deadline);
                await client.DisposeAsync();
                return client.PendingPublishes; // read the moment this call returned
            }

            var first = Task.Run(DisposeAndCountAsync);
            var second = Task.Run(DisposeAndCountAsync);
            var left = await Task.WhenAll(first, second).WaitAsync(Deadline);
            Assert.True(left.All(n => n == 0), $"round {round}: a disposal returned with {left.Max()} publish(es) still pending");
            foreach (var p in publishes)
            {
                var error = await Assert.ThrowsAsync<BrokerClientException>(() => p.WaitAsync(Deadline));
                Assert.Equal(ErrorCode.Closed, error.ErrorCode);
            }
        }
    }
}
