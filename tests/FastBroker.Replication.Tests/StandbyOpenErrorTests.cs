using System.Collections.Concurrent;
using FastBroker.Engine;
using FastBroker.Replication;
using FastBroker.Replication.Internal;
using FastBroker.Testing;

namespace FastBroker.ReplicationTests;

/// <summary>
/// A failure on disk while the standby opens its copies (a copy's journal that is a file, a <c>topic.meta</c> that is a
/// directory, a topics directory that is a file) refuses the open as the broker's open refuses it
/// (<c>TopicOpenErrorTests</c>): a <see cref="BrokerException"/>, <see cref="BrokerErrorCode.StorageError"/>, naming the
/// topic or directory, the path and the cause (kept inside), and the copies already opened are closed: the repaired
/// directory opens again in this process. Before, the raw <see cref="IOException"/> escaped the standby's open, and a
/// <c>topic.meta</c> that is a directory was reported as missing.
/// </summary>
public sealed class StandbyOpenErrorTests
{
    private static readonly TopicOptions s_small = TopicOptions.Default with { SegmentBytes = 1L << 20, MaxMessageBytes = 64 * 1024 };

    [Fact]
    public async Task A_copy_whose_journal_is_a_file_refuses_the_standbys_open_naming_the_topic_and_the_repaired_copy_opens()
    {
        using var data = new TempDirectory();
        await PublishAsync(data.Path);
        var dir = data.Combine("topics", "ledger");
        var journal = Path.Combine(dir, TopicRegistry.JournalDirectory);
        var aside = data.Combine("ledger-journal");
        Directory.Move(journal, aside);
        File.WriteAllText(journal, "not a journal");

        var e = Refused(data.Path);

        Assert.Equal(BrokerErrorCode.StorageError, e.Code);
        Assert.Contains($"topic 'ledger' ({dir}) cannot be opened", e.Message, StringComparison.Ordinal);
        Assert.NotNull(e.InnerException);
        File.Delete(journal);
        Directory.Move(aside, journal);
        OpensWithCopies(data.Path);
    }

    [Fact]
    public async Task A_copy_whose_topic_meta_is_a_directory_refuses_the_standbys_open_naming_the_file()
    {
        using var data = new TempDirectory();
        await PublishAsync(data.Path);
        var meta = data.Combine("topics", "ledger", TopicRegistry.MetaFile);
        var saved = File.ReadAllText(meta);
        File.Delete(meta);
        Directory.CreateDirectory(meta);

        var e = Refused(data.Path);

        Assert.Equal(BrokerErrorCode.StorageError, e.Code);
        Assert.Contains("topic 'ledger'", e.Message, StringComparison.Ordinal);
        Assert.Contains($"'{meta}' is a directory", e.Message, StringComparison.Ordinal);
        Directory.Delete(meta);
        File.WriteAllText(meta, saved);
        OpensWithCopies(data.Path);
    }

    [Fact]
    public void A_topics_directory_that_is_a_file_refuses_the_standbys_open_naming_it()
    {
        using var data = new TempDirectory();
        var topics = data.Combine("topics");
        File.WriteAllText(topics, "not a directory");

        var e = Refused(data.Path);

        Assert.Equal(BrokerErrorCode.StorageError, e.Code);
        Assert.Contains($"the topics directory '{topics}'", e.Message, StringComparison.Ordinal);
        Assert.Equal("not a directory", File.ReadAllText(topics));
    }

    /// <summary>Topics "alpha", "ledger" and "omega", each with a record: the standby opens "alpha" before "ledger".</summary>
    private static async Task PublishAsync(string path)
    {
        await using var broker = await Broker.OpenAsync(BrokerOptions.Default with { DataDirectory = path });
        foreach (var name in new[] { "alpha", "ledger", "omega" })
        {
            broker.CreateTopic(name, s_small);
            Assert.Equal(0, await broker.PublishAsync(name, new byte[8]));
        }
    }

    private static ReplicationOptions Options(string path, ConcurrentQueue<string> log) =>
        new() { NodeId = "b", DataDirectory = path, Peer = "127.0.0.1:9", Log = log.Enqueue };

    private static BrokerException Refused(string path)
    {
        StandbyReplica? replica = null;
        var e = Assert.Throws<BrokerException>(() => replica = new StandbyReplica(Options(path, new ConcurrentQueue<string>()), NodeState.Load(path), verifySealedSegments: true));
        if (replica is not null)
        {
            replica.Dispose();
            replica.CloseJournals();
        }

        return e;
    }

    /// <summary>The repaired directory opens in this process: the refused open closed the copies it had opened (their journals' locks).</summary>
    private static void OpensWithCopies(string path)
    {
        var replica = new StandbyReplica(Options(path, new ConcurrentQueue<string>()), NodeState.Load(path), verifySealedSegments: true);
        try
        {
            Assert.Equal(new Dictionary<string, long> { ["alpha"] = 1, ["ledger"] = 1, ["omega"] = 1 }, replica.Heads());
        }
        finally
        {
            replica.Dispose();
            replica.CloseJournals();
        }
    }
}
