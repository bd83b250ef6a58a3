using FastBroker.Journal;
using FastBroker.Storage;

namespace FastBroker.Engine;

// A creation commits by renaming its settings into place; the open removes what one that did not commit left.
internal sealed partial class TopicRegistry
{
    /// <summary>
    /// The settings of a topic being created, until its journal exists and the rename to <see cref="MetaFile"/> commits
    /// the creation.
    /// </summary>
    internal const string PendingMetaFile = "topic.meta.creating";

    /// <summary>What a creation that did not commit can leave in a topic's directory, besides nothing at all.</summary>
    private static readonly string[] s_creationLeftovers = [PendingMetaFile, PendingMetaFile + ".tmp", MetaFile + ".tmp", JournalDirectory];

    /// <summary>
    /// The topic's work-queue groups' state: beside <see cref="PendingMetaFile"/>, what a standby's deletion or reset of
    /// its copy left (it uncommits the copy first, then deletes the group state), removed with the rest.
    /// </summary>
    internal const string GroupsDirectory = "groups";

    /// <summary>
    /// Commits a creation: the journal directory's entry durable first (so that <c>topic.meta</c> is never durable
    /// without it), then the rename of the pending settings to <c>topic.meta</c>, synced.
    /// </summary>
    private static void Commit(string name, string dir, bool durable, bool persistent)
    {
        if (durable && persistent)
        {
            SyncDirectory(name, dir); // the journal directory's entry
        }

        var meta = Path.Combine(dir, MetaFile);
        try
        {
            File.Move(Path.Combine(dir, PendingMetaFile), meta, overwrite: true);
        }
        catch (Exception e) when (ResourceShortage.Describe(e) is { } shortage)
        {
            throw new BrokerException(BrokerErrorCode.ResourceExhausted, $"topic '{name}': its settings could not be renamed to '{meta}' now ({shortage}: {e.Message}); try again later", e);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new BrokerException(BrokerErrorCode.StorageError, $"topic '{name}': its settings could not be renamed to '{meta}': {e.Message}", e);
        }

        if (durable)
        {
            SyncDirectory(name, dir); // the rename: the topic exists from here on
        }
    }

    /// <summary>
    /// Takes a committed topic back to a creation that did not complete: <c>topic.meta</c> is renamed to
    /// <see cref="PendingMetaFile"/> and the directory synced, so that whatever a crash leaves of a removal after this
    /// is a directory the next open removes (<see cref="RemoveUncommitted"/>), never a journal without settings.
    /// </summary>
    internal static void Uncommit(string dir)
    {
        File.Move(Path.Combine(dir, MetaFile), Path.Combine(dir, PendingMetaFile), overwrite: true);
        DurableFile.SyncDirectory(dir);
    }

    /// <summary>
    /// Removes a topic directory without <c>topic.meta</c> holding only creation leftovers: the journal first, then the
    /// group state beside the pending settings, the settings last (a crash in between leaves one the next open removes again), then the directory, and syncs
    /// <paramref name="root"/>. <paramref name="step"/> (tests) is told each step before it is taken.
    /// </summary>
    internal static void DeleteUncommitted(string root, string dir, Action<string>? step = null)
    {
        var journal = Path.Combine(dir, JournalDirectory);
        if (System.IO.Directory.Exists(journal))
        {
            step?.Invoke($"delete recursively {journal}");
            System.IO.Directory.Delete(journal, recursive: true);
        }

        var pending = Path.Combine(dir, PendingMetaFile);
        var groups = Path.Combine(dir, GroupsDirectory);
        if (File.Exists(pending) && System.IO.Directory.Exists(groups))
        {
            step?.Invoke($"delete recursively {groups}");
            System.IO.Directory.Delete(groups, recursive: true);
        }

        step?.Invoke($"delete {pending}");
        File.Delete(pending);
        File.Delete(pending + ".tmp");
        File.Delete(Path.Combine(dir, MetaFile + ".tmp"));
        step?.Invoke($"delete directory {dir}");
        System.IO.Directory.Delete(dir);
        DurableFile.SyncDirectory(root);
    }

    /// <summary>
    /// At open, a topic directory without <c>topic.meta</c> under <paramref name="root"/>: what a creation that did not
    /// commit left (nothing, the pending settings, a journal beside them; or a standby's deletion or reset of its copy:
    /// the same and the group state beside the pending settings) is removed, logged once with what it held; a
    /// journal beside neither settings file is damage and refused; anything else (files no creation makes) is left as
    /// it is and logged. The broker's open and the standby's (which removes its copies the same way) both use it.
    /// </summary>
    /// <exception cref="BrokerException"><see cref="BrokerErrorCode.StorageError"/>: a journal without settings.</exception>
    internal static void RemoveUncommitted(string root, string name, string dir, Action<string>? log)
    {
        var meta = Path.Combine(dir, MetaFile);
        var pending = Path.Combine(dir, PendingMetaFile);
        var journal = Path.Combine(dir, JournalDirectory);
        if (!File.Exists(pending) && System.IO.Directory.Exists(journal))
        {
            throw new BrokerException(BrokerErrorCode.StorageError, $"topic '{name}': '{meta}' is missing beside the topic's journal. {RepairAdvice}");
        }

        var entries = System.IO.Directory.GetFileSystemEntries(dir).Select(Path.GetFileName).Order(StringComparer.Ordinal).ToArray();
        var uncommitted = File.Exists(pending); // a group's state beside it is a standby's deletion's or reset's leftover
        if (entries.Any(e => !s_creationLeftovers.Contains(e, StringComparer.Ordinal) && !(uncommitted && e == GroupsDirectory)))
        {
            log?.Invoke($"topic '{name}': '{dir}' has no '{MetaFile}' and holds what no topic creation makes ({string.Join(", ", entries)}); not opened, left as it is");
            return;
        }

        var held = entries.Length == 0 ? "nothing" : string.Join(", ", entries);
        try
        {
            DeleteUncommitted(root, dir);
            log?.Invoke($"topic '{name}': removed '{dir}', left by a creation that did not complete (it held {held}); the topic was never created");
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or JournalException)
        {
            log?.Invoke($"topic '{name}': '{dir}', left by a creation that did not complete (it held {held}), could not all be removed: {e.Message}; not opened, the next open tries again");
        }
    }
}
