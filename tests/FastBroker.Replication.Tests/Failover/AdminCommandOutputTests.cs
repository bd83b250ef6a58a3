using FastBroker.Testing;

namespace FastBroker.ReplicationTests.Failover;

/// <summary>
/// <c>fastbroker topics|groups|stats</c> print the server's JSON document as indented <c>name: value</c> lines (a list item's name once, on its <c>- </c> line) with the values
/// as JSON writes them: <c>true</c>, <c>false</c>, <c>null</c> (not .NET's <c>True</c>, <c>False</c> and nothing).
/// </summary>
[Collection(nameof(FailoverCollection))]
public class AdminCommandOutputTests
{
    [Fact]
    public async Task Topics_groups_and_stats_print_json_literals_as_json_spells_them_and_name_each_item_once()
    {
        using var dir = new TempDirectory("fastbroker-cli-admin");
        var port = FreePort.Next();
        var server = Cli.Address(port);
        using var serve = await Cli.ServeAsync(dir.Path, port);
        await Cli.RunAsync("pub", "orders.eu", "hello", "--server", server);
        await Cli.RunAsync("sub", "orders.eu", "--group", "workers", "--count", "1", "--server", server);

        var topics = await Cli.RunAsync("topics", "--server", server);
        Assert.Contains(topics, l => l.Trim() == "persistent: true");
        var stats = await Cli.RunAsync("stats", "--server", server);
        Assert.Contains(stats, l => l.Trim() == "tls: false");
        Assert.DoesNotContain(topics.Concat(stats), l => l.EndsWith(": True", StringComparison.Ordinal) || l.EndsWith(": False", StringComparison.Ordinal));

        // A list item's first field (its name) on its "- " line, once.
        Assert.Contains(topics, l => l.Trim() == "- name: orders.eu");
        Assert.Single(topics, l => l.Contains("orders.eu", StringComparison.Ordinal));
        var groups = await Cli.RunAsync("groups", "--server", server);
        Assert.Contains(groups, l => l.TrimStart().StartsWith("- ", StringComparison.Ordinal) && (l.Contains("workers", StringComparison.Ordinal) || l.Contains("orders.eu", StringComparison.Ordinal)));
        Assert.DoesNotContain(topics.Concat(groups), l => l.Contains("[0]", StringComparison.Ordinal));
    }
}
