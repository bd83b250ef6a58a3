using FastBroker.Engine;
using FastBroker.Journal;

namespace FastBroker.Replication.Internal;

// The standby's open of its copies on disk: each topic's settings and journal, every failure typed as the broker's open types it.
internal sealed partial class StandbyReplica
{
    /// <summary>
    /// Opens the copies on disk as the broker's open opens its topics (<see cref="TopicRegistry.LoadAll"/>), in the same
    /// order; a failure on disk (the listing, a copy's settings or journal) is refused as it refuses it.
    /// </summary>
    /// <exception cref="BrokerException">
    /// <see cref="BrokerErrorCode.StorageError"/>: the topics directory cannot be listed, or a copy's directory, settings
    /// or journal cannot be read (a <c>topic.meta</c> that is a directory, a journal that is a file) or are damaged,
    /// naming the topic, the path and the cause (inside, as the inner exception); <see cref="BrokerErrorCode.ResourceExhausted"/>
    /// when the system ran short. The caller closes the copies already opened.
    /// </exception>
    private void OpenExisting() => TopicRegistry.OpenEach(_topicsRoot, OpenExisting);

    private void OpenExisting(string name, string dir)
    {
        // Not File.Exists: false for a topic.meta that is a directory, or that cannot be looked at, which would take a
        // committed copy for what a creation left (TopicRegistry.HasMetaFile refuses the one, throws the other).
        var meta = Path.Combine(dir, TopicRegistry.MetaFile);
        if (!TopicRegistry.HasMetaFile(name, meta))
        {
            // A creation or deletion killed part way: removed as the broker's open does; a journal without
            // settings is damage, refused (BrokerException) as a promoted open would.
            TopicRegistry.RemoveUncommitted(_topicsRoot, name, dir, LogTopic);
        }
        else if (TopicRegistry.ReadMetaFile(name, meta).Persistent)
        {
            // A copy whose journal is gone is refused as the broker's open refuses it, not opened empty: a node
            // promoted from here would serve the topic from offset 0 with nothing in it.
            TopicRegistry.EnsureJournalDirectory(name, dir);
            Open(name, dir, 0);
        }
    }

    private JournalOptions JournalOptionsFor(string topicDirectory) => StandbyJournalOptions(TopicRegistry.JournalOptionsIn(topicDirectory));

    private JournalOptions StandbyJournalOptions(JournalOptions topic) =>
        topic with
        {
            // The standby flushes by group commit whatever the topic's policy: its durable ack must mean it.
            Durability = DurabilityPolicy.GroupCommit,
            VerifySealedSegmentsOnOpen = _verifySealedSegments,
        };

    private ReplicaTopic Open(string name, string dir, long initialOffset) => Register(name, OpenJournal(name, dir, JournalOptionsFor(dir), initialOffset));

    /// <summary>
    /// Opens this node's copy of a topic's journal. A copy damaged on disk (a record of a sealed segment that fails its
    /// check, found by the open's verification) is not refused, as a broker's journal is: the primary holds the records,
    /// so the copy is truncated at the damaged record (<see cref="JournalOptions.RepairCorruption"/>, logged with what it
    /// dropped) and the attach sends the rest again. Before the cut, the damaged segment and every later one are kept
    /// aside in <c>damaged/</c> (<see cref="KeepDamagedAside"/>): a node promoted without its primary can have them read.
    /// </summary>
    private JournalLog OpenJournal(string name, string dir, JournalOptions options, long initialOffset)
    {
        var path = Path.Combine(dir, TopicRegistry.JournalDirectory);
        JournalLog journal;
        try
        {
            journal = JournalLog.Open(path, options with { InitialOffset = initialOffset });
        }
        catch (JournalCorruptionException e) when (!options.RepairCorruption)
        {
            _options.Log?.Invoke($"replication: topic '{name}': this node's copy is damaged ({e.Message}); {KeepDamagedAside(name, path, e.FilePath)}; truncated at the damaged record, the primary sends the rest again at the attach");
            journal = JournalLog.Open(path, options with { InitialOffset = initialOffset, RepairCorruption = true });
        }

        if (!journal.Recovery.IsClean)
        {
            _options.Log?.Invoke($"replication: topic '{name}' recovery: {journal.Recovery}");
        }

        return journal;
    }

    /// <summary>
    /// Keeps the files the cut destroys in <c>&lt;DataDirectory&gt;/damaged/&lt;topic&gt;-&lt;UTC time&gt;/</c>
    /// (<see cref="DamagedSegments.KeepAsideOnce"/>; outside
    /// <c>topics/</c>, which a copy reset deletes), once: a node killed between the keep and the cut finds them kept
    /// at its next open and keeps nothing again. Says where for the cut's log line. A failure (a full disk) is said
    /// there instead, and the cut goes on: the node must come up.
    /// </summary>
    private string KeepDamagedAside(string name, string journalDirectory, string damagedSegment)
    {
        var root = Path.Combine(_options.DataDirectory, DamagedDirectory);
        try
        {
            var kept = DamagedSegments.KeepAsideOnce(journalDirectory, damagedSegment, root, name, DateTimeOffset.UtcNow);
            return kept.KeptBefore
                ? $"the damaged segment and every later one ({kept.Files.Count} files) already kept aside in '{kept.Directory}' (by an open stopped before its cut)"
                : $"the damaged segment and every later one ({kept.Files.Count} files) kept aside in '{kept.Directory}'";
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or JournalException)
        {
            return $"the damaged segment and the later ones could NOT be kept aside in '{root}' ({e.Message}): what the cut drops is lost on this node";
        }
    }
}
