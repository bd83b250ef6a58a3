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
    /// At open, a topic directory without <c>topic.meta</c>: what a creation that did not commit left (nothing, the
    /// pending settings, a journal beside them) is removed, logged once with what it held; a journal beside neither
    /// settings file is damage and refused; anything else (files no creation makes) is left as it is and logged.
    /// </summary>
    /// <exception cref="BrokerException"><see cref="BrokerErrorCode.StorageError"/>: a journal without settings.</exception>
    private void RemoveUncommitted(string name, string dir)
    {
        var meta = Path.Combine(dir, MetaFile);
        var pending = Path.Combine(dir, PendingMetaFile);
        var journal = Path.Combine(dir, JournalDirectory);
        if (!File.Exists(pending) && System.IO.Directory.Exists(journal))
        {
            throw new BrokerException(BrokerErrorCode.StorageError, $"topic '{name}': '{meta}' is missing beside the topic's journal. {RepairAdvice}");
        }

        var entries = System.IO.Directory.GetFileSystemEntries(dir).Select(Path.GetFileName).Order(StringComparer.Ordinal).ToArray();
        if (entries.Any(e => !s_creationLeftovers.Contains(e, StringComparer.Ordinal)))
        {
            _options.Log?.Invoke($"topic '{name}': '{dir}' has no '{MetaFile}' and holds what no topic creation makes ({string.Join(", ", entries)}); not opened, left as it is");
            return;
        }

        var held = entries.Length == 0 ? "nothing" : string.Join(", ", entries);
        try
        {
            // The journal first, the settings last: a crash in between leaves a directory this removes again.
            if (System.IO.Directory.Exists(journal))
            {
                System.IO.Directory.Delete(journal, recursive: true);
            }

            File.Delete(pending);
            File.Delete(pending + ".tmp");
            File.Delete(meta + ".tmp");
            System.IO.Directory.Delete(dir);
            DurableFile.SyncDirectory(_root);
            _options.Log?.Invoke($"topic '{name}': removed '{dir}', left by a creation that did not complete (it held {held}); the topic was never created");
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or JournalException)
        {
            _options.Log?.Invoke($"topic '{name}': '{dir}', left by a creation that did not complete (it held {held}), could not all be removed: {e.Message}; not opened, the next open tries again");
        }
    }
}
