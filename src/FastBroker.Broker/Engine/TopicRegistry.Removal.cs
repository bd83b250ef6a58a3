using FastBroker.Journal;

namespace FastBroker.Engine;

// A creation that fails removes what it made: a topic is created whole or not at all.
internal sealed partial class TopicRegistry
{
    /// <summary>What of a topic's directory existed before a creation (so that a failed one removes only what it made).</summary>
    private readonly struct CreatedFiles(string dir)
    {
        public string Directory { get; } = dir;

        public bool NewDirectory { get; } = !System.IO.Directory.Exists(dir);

        public bool NewMeta { get; } = !File.Exists(Path.Combine(dir, MetaFile));

        public bool NewJournal { get; } = !System.IO.Directory.Exists(Path.Combine(dir, JournalDirectory));
    }

    /// <summary>
    /// Removes what a failed creation made, nothing that was there before: a <c>topic.meta</c> it committed is renamed
    /// back to its pending name first (synced), then the journal's directory goes (synced), then the settings (so that a crash
    /// at any step leaves a directory without <c>topic.meta</c>, which the next open removes, and never a journal
    /// without settings, which it refuses), then the topic's directory, and the directory they were in is synced.
    /// Best effort: it stops at the first step that fails, and logs it. Each step on disk is told to <see cref="FileStep"/>
    /// before it is taken.
    /// </summary>
    private void RemoveCreated(string name, CreatedFiles created)
    {
        try
        {
            var meta = Path.Combine(created.Directory, MetaFile);
            var pending = Path.Combine(created.Directory, PendingMetaFile);
            if (created.NewMeta && File.Exists(meta))
            {
                Uncommit(created.Directory, Step);
            }

            var journal = Path.Combine(created.Directory, JournalDirectory);
            if (created.NewJournal && System.IO.Directory.Exists(journal))
            {
                Step($"delete recursively {journal}");
                System.IO.Directory.Delete(journal, recursive: true);
                Step($"sync directory {created.Directory}");
                DurableFile.SyncDirectory(created.Directory); // durable before the settings' removal: never a journal without settings
            }

            Step($"delete {pending}");
            File.Delete(pending);
            File.Delete(pending + ".tmp");
            var synced = created.NewDirectory ? _root : created.Directory;
            if (created.NewDirectory)
            {
                Step($"delete directory {created.Directory}");
                System.IO.Directory.Delete(created.Directory, recursive: true);
            }

            Step($"sync directory {synced}");
            DurableFile.SyncDirectory(synced);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or JournalException)
        {
            _options.Log?.Invoke($"topic '{name}': what its refused creation made in '{created.Directory}' could not all be removed: {e.Message}");
        }
    }
}
