using System.Text;
using FastBroker.Client;

namespace FastBroker.ReplicationTests.Failover;

/// <summary>Publishes <c>prefix0000</c>, <c>prefix0001</c>, … to a node, all confirmed, as one client.</summary>
internal static class PrefixedMessages
{
    /// <summary>Publishes and waits for every confirmation; asserts they name consecutive offsets, returns the first.</summary>
    public static async Task<long> PublishAsync(NodeProcess node, string topic, string prefix, int count, FastBroker.Protocol.Durability durability)
    {
        await using var client = await BrokerClient.ConnectAsync(BrokerClientOptions.Default with { Endpoints = [node.ClientEndpoint], Reconnect = false });
        var options = PublishOptions.Default with { Durability = durability };
        var tasks = new List<Task<long>>();
        for (var i = 0; i < count; i++)
        {
            tasks.Add(client.PublishAsync(topic, Encoding.UTF8.GetBytes($"{prefix}{i:D4}"), options).AsTask());
        }

        var offsets = await Task.WhenAll(tasks).WaitAsync(TimeSpan.FromSeconds(60));
        for (var i = 1; i < offsets.Length; i++)
        {
            Assert.Equal(offsets[0] + i, offsets[i]);
        }

        return offsets[0];
    }
}
