using FastBroker.Engine;
using FastBroker.Journal;

namespace FastBroker.Replication.Internal;

// A topic copy's creation and deletion on disk: as on the primary (TopicRegistry), the rename of the settings to
// topic.meta commits a copy, so a kill at any step leaves the copy whole or a directory the next open removes.
internal sealed partial class StandbyReplica
{
    /// <summary>
    /// Creates this node's copy of a topic the primary announced: the settings as <c>topic.meta.creating</c> (durable),
    /// the journal from <paramref name="from"/>, then the rename to <c>topic.meta</c> (synced), the commit point. What
    /// an earlier creation or deletion left in the directory without <c>topic.meta</c> is removed first, so the copy
    /// never opens another's journal.
    /// </summary>
    private ReplicaTopic CreateCopy(string name, string dir, byte[] settings, TopicOptions options, long from)
    {
        var meta = Path.Combine(dir, TopicRegistry.MetaFile);
        var pending = Path.Combine(dir, TopicRegistry.PendingMetaFile);
        if (Directory.Exists(dir) && !File.Exists(meta))
        {
            RemoveLeftover(name, dir);
        }

        Step($"create directory {dir}");
        Directory.CreateDirectory(dir);
        Step($"write {pending}");
        DurableFile.WriteAllBytes(pending, settings);
        Step($"sync directory {_topicsRoot}");
        DurableFile.SyncDirectory(_topicsRoot);
        Step($"open journal in {dir}");
        var journal = OpenJournal(name, dir, StandbyJournalOptions(TopicRegistry.JournalOptionsFor(options)), from);
        try
        {
            Step($"sync directory {dir}");
            DurableFile.SyncDirectory(dir); // the journal directory's entry, before the commit
            Step($"rename {pending} to {meta}");
            File.Move(pending, meta, overwrite: true);
            Step($"sync directory {dir}");
            DurableFile.SyncDirectory(dir); // the commit
        }
        catch
        {
            journal.Dispose(); // its lock; what is on disk is a leftover the next open or creation removes
            throw;
        }

        return Register(name, journal);
    }

    /// <summary>
    /// Deletes this node's copy of a topic the primary does not have: first <c>topic.meta</c> back to its pending name
    /// (synced), so that from there a kill leaves what the next open removes (never a journal without settings, which the
    /// promoted broker would refuse, nor a committed copy without its group's state, which a promoted broker would take
    /// as a new group), then what no creation makes but a group's state, then the journal, the group state, the settings
    /// and the directory (<see cref="TopicRegistry.DeleteUncommitted"/>).
    /// </summary>
    private void DeleteCopy(string dir)
    {
        if (File.Exists(Path.Combine(dir, TopicRegistry.MetaFile)))
        {
            Step($"rename {Path.Combine(dir, TopicRegistry.MetaFile)} to {TopicRegistry.PendingMetaFile}");
            TopicRegistry.Uncommit(dir);
        }

        foreach (var entry in Directory.GetFileSystemEntries(dir))
        {
            if (Path.GetFileName(entry) is TopicRegistry.PendingMetaFile or TopicRegistry.JournalDirectory or TopicRegistry.GroupsDirectory)
            {
                continue;
            }

            if (Directory.Exists(entry))
            {
                Step($"delete recursively {entry}");
                Directory.Delete(entry, recursive: true);
            }
            else
            {
                Step($"delete {entry}");
                File.Delete(entry);
            }
        }

        TopicRegistry.DeleteUncommitted(_topicsRoot, dir, Step);
    }

    /// <summary>
    /// Restarts this node's copy of a topic at <paramref name="from"/> (the primary no longer has what lies before it):
    /// the copy is deleted as a topic the primary does not have (<see cref="DeleteCopy"/>: uncommitted first, so a kill
    /// from there leaves a directory the next open removes, never <c>topic.meta</c> beside part of a journal), then
    /// created anew with its settings (<see cref="CreateCopy"/>). A kill before the uncommit leaves the old copy whole.
    /// </summary>
    private void ResetCopy(string name, string dir, long from)
    {
        var meta = Path.Combine(dir, TopicRegistry.MetaFile);
        var settings = File.ReadAllBytes(meta);
        var options = TopicRegistry.ReadMetaFile(name, meta);
        DeleteCopy(dir);
        CreateCopy(name, dir, settings, options, from);
    }

    /// <summary>
    /// A topic directory without <c>topic.meta</c> (a creation or deletion killed part way): removed by the broker's
    /// rule (<see cref="TopicRegistry.RemoveUncommitted"/>), logged. A journal without settings is damage, refused.
    /// </summary>
    /// <exception cref="IOException">The directory was not removed (damage, or files no creation makes).</exception>
    private void RemoveLeftover(string name, string dir)
    {
        if (KeepsGroupState(name, dir))
        {
            return;
        }

        try
        {
            TopicRegistry.RemoveUncommitted(_topicsRoot, name, dir, LogTopic);
        }
        catch (BrokerException e)
        {
            throw new IOException(e.Message, e);
        }

        if (Directory.Exists(dir))
        {
            throw new IOException($"topic '{name}': '{dir}' has no '{TopicRegistry.MetaFile}' and could not be removed (logged); its copy is not created there");
        }
    }

    /// <summary>
    /// A work-queue group's state reaches the standby apart from the stream (the state files), so it can come before the
    /// topic's first records, and a copy's directory then holds <c>groups/</c> and no <c>topic.meta</c>. The copy is
    /// created beside it: what an earlier creation left there (the journal first, then the pending settings) is removed,
    /// never the group state. False when the directory holds no <c>groups/</c>, or anything no creation makes besides it.
    /// </summary>
    /// <exception cref="IOException">A journal beside no settings file: damage, refused as the open refuses it.</exception>
    private bool KeepsGroupState(string name, string dir)
    {
        var entries = Directory.GetFileSystemEntries(dir).Select(Path.GetFileName).ToArray();
        if (!entries.Contains(GroupsDirectory, StringComparer.Ordinal)
            || entries.Any(e => e is not (GroupsDirectory or TopicRegistry.PendingMetaFile or TopicRegistry.JournalDirectory)
                && e != TopicRegistry.PendingMetaFile + ".tmp" && e != TopicRegistry.MetaFile + ".tmp"))
        {
            return false;
        }

        var journal = Path.Combine(dir, TopicRegistry.JournalDirectory);
        var pending = Path.Combine(dir, TopicRegistry.PendingMetaFile);
        if (Directory.Exists(journal))
        {
            if (!File.Exists(pending))
            {
                throw new IOException($"topic '{name}': '{Path.Combine(dir, TopicRegistry.MetaFile)}' is missing beside the topic's journal; its copy is not created there");
            }

            Step($"delete recursively {journal}");
            Directory.Delete(journal, recursive: true);
            Step($"sync directory {dir}");
            DurableFile.SyncDirectory(dir); // durable before the settings' removal: never a journal without settings
            LogTopic($"topic '{name}': removed the journal a creation that did not complete left in '{dir}', beside the group state kept there");
        }

        File.Delete(pending);
        File.Delete(pending + ".tmp");
        File.Delete(Path.Combine(dir, TopicRegistry.MetaFile + ".tmp"));
        return true;
    }

    private const string GroupsDirectory = TopicRegistry.GroupsDirectory;

    private void LogTopic(string line) => _options.Log?.Invoke("replication: " + line);
}
