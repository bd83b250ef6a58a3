using System.Collections.Concurrent;
using FastBroker.Engine;
using FastBroker.Replication;
using FastBroker.Replication.Internal;
using FastBroker.Testing;

namespace FastBroker.ReplicationTests;

/// <summary>
/// A standby's copy of a persistent topic whose <c>topic.meta</c> is there and whose <c>journal/</c> is not (deleted,
/// a failed restore): no kill of a copy's creation, deletion or reset leaves that (the journal's directory is made and
/// synced before the rename to <c>topic.meta</c>, and <c>topic.meta</c> is renamed away before the journal goes). Before,
/// the standby's open created an empty journal in its place, and a node promoted from there served the topic from
/// offset 0 with nothing in it; now the open is refused as the broker's is (<see cref="BrokerErrorCode.StorageError"/>
/// naming the topic and the path) and nothing is created on disk.
/// </summary>
public sealed class StandbyJournalMissingTests
{
    [Fact]
    public async Task The_standbys_open_refuses_a_copy_whose_journal_directory_is_gone_and_creates_nothing()
    {
        using var data = new TempDirectory();
        await using (var broker = await Broker.OpenAsync(BrokerOptions.Default with { DataDirectory = data.Path }))
        {
            broker.CreateTopic("ledger", TopicOptions.Default with { SegmentBytes = 1L << 20, MaxMessageBytes = 64 * 1024 });
            Assert.Equal(0, await broker.PublishAsync("ledger", new byte[8]));
        }

        var dir = data.Combine("topics", "ledger");
        var journal = Path.Combine(dir, TopicRegistry.JournalDirectory);
        Directory.Delete(journal, recursive: true);

        var log = new ConcurrentQueue<string>();
        var options = new ReplicationOptions { NodeId = "b", DataDirectory = data.Path, Peer = "127.0.0.1:9", Log = log.Enqueue };
        StandbyReplica? replica = null;
        var e = Assert.Throws<BrokerException>(() => replica = new StandbyReplica(options, NodeState.Load(data.Path), verifySealedSegments: true));
        if (replica is not null)
        {
            replica.Dispose();
            replica.CloseJournals();
        }

        Assert.Equal(BrokerErrorCode.StorageError, e.Code);
        Assert.Contains("topic 'ledger'", e.Message, StringComparison.Ordinal);
        Assert.Contains($"'{journal}' is missing", e.Message, StringComparison.Ordinal);
        Assert.False(Path.Exists(journal), "the refused open created a journal in place of the missing one");
        Assert.Equal([TopicRegistry.MetaFile], Directory.GetFileSystemEntries(dir).Select(Path.GetFileName));
    }
}
