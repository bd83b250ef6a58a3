using FastBroker.Testing;

namespace FastBroker.ReplicationTests.Failover;

/// <summary>
/// <c>fastbroker serve</c> on a data directory whose topics cannot be opened (a topic's <c>journal</c> that is a file)
/// exits 1 with the broker's refusal on stderr, naming the topic, its directory and the cause, no stack trace, and
/// leaves the directory as it was; repaired, the directory serves again. Before, the raw <see cref="IOException"/>'s
/// message ("The file '…/journal' already exists.") was all it printed.
/// </summary>
public sealed class CliStartFailureTests
{
    [Fact]
    public async Task Serve_on_a_topic_it_cannot_open_exits_1_naming_the_topic_its_directory_and_the_cause()
    {
        using var dir = new TempDirectory("fastbroker-cli-start-failure");
        var (data, topic, journal) = await LedgerOfOneMessageAsync(dir);
        var aside = dir.Combine("ledger-journal");
        Directory.Move(journal, aside);
        File.WriteAllText(journal, "not a journal");

        string[] serve = ["serve", "--data", data, "--port", "0", "--admin-port", "-1", "--quiet"];
        var refused = await CliOutcome.RunAsync(serve, TimeSpan.FromSeconds(60));
        var named = $"topic 'ledger' ({topic}) cannot be opened: ";
        Assert.True(
            refused.ExitCode == 1 && !refused.HasStackTrace && refused.Errors.Contains(named, StringComparison.Ordinal) && refused.Errors.Contains(journal, StringComparison.Ordinal),
            $"expected exit 1 and \"{named}…{journal}…\" on stderr: {refused.Describe(serve)}, stdout: [{refused.Output}]");
        Assert.Equal("not a journal", File.ReadAllText(journal));
        Assert.Equal(["topic.meta"], Directory.GetFileSystemEntries(topic).Select(Path.GetFileName).Where(n => n != "journal").Order(StringComparer.Ordinal));

        File.Delete(journal);
        Directory.Move(aside, journal);
        using var node = await Cli.ServeAsync(data, FreePort.Next());
        Assert.False(node.HasExited, node.Errors);
    }

    /// <summary>
    /// A persistent topic whose <c>journal</c> directory is gone: before, <c>serve</c> started with the topic empty
    /// (offsets from 0 again); now it exits 1 with the refusal naming the topic, the missing path and what to do, and
    /// creates no journal.
    /// </summary>
    [Fact]
    public async Task Serve_on_a_topic_whose_journal_directory_is_gone_exits_1_naming_the_missing_path()
    {
        using var dir = new TempDirectory("fastbroker-cli-journal-missing");
        var (data, topic, journal) = await LedgerOfOneMessageAsync(dir);
        Directory.Delete(journal, recursive: true);

        string[] serve = ["serve", "--data", data, "--port", "0", "--admin-port", "-1", "--quiet"];
        var refused = await CliOutcome.RunAsync(serve, TimeSpan.FromSeconds(60));
        var named = $"topic 'ledger': its journal directory '{journal}' is missing";
        Assert.True(
            refused.ExitCode == 1 && !refused.HasStackTrace && refused.Errors.Contains(named, StringComparison.Ordinal),
            $"expected exit 1 and \"{named}…\" on stderr: {refused.Describe(serve)}, stdout: [{refused.Output}]");
        Assert.Equal(["topic.meta"], Directory.GetFileSystemEntries(topic).Select(Path.GetFileName));
    }

    /// <summary>A data directory under <paramref name="dir"/> with the persistent topic <c>ledger</c> holding one message, closed.</summary>
    private static async Task<(string Data, string Topic, string Journal)> LedgerOfOneMessageAsync(TempDirectory dir)
    {
        var data = dir.Combine("data");
        await using (var broker = await Broker.OpenAsync(BrokerOptions.Default with { DataDirectory = data }))
        {
            broker.CreateTopic("ledger", TopicOptions.Default with { SegmentBytes = 1L << 20, MaxMessageBytes = 64 * 1024 });
            Assert.Equal(0, await broker.PublishAsync("ledger", "m0"u8.ToArray()));
        }

        var topic = Path.Combine(data, "topics", "ledger");
        return (data, topic, Path.Combine(topic, "journal"));
    }
}
