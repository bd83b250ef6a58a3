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
    /// Removes what a failed creation made, nothing that was there before: the journal's directory first, then the
    /// settings (a crash between them leaves settings without a journal, which the next start opens as a topic, never a
    /// journal without settings, which it refuses), then the topic's directory, and syncs the directory they were in.
    /// Best effort: what cannot be removed is logged.
    /// </summary>
    private void RemoveCreated(string name, CreatedFiles created)
    {
        try
        {
            var journal = Path.Combine(created.Directory, JournalDirectory);
            if (created.NewJournal && System.IO.Directory.Exists(journal))
            {
                System.IO.Directory.Delete(journal, recursive: true);
            }

            if (created.NewMeta)
            {
                File.Delete(Path.Combine(created.Directory, MetaFile));
                File.Delete(Path.Combine(created.Directory, MetaFile + ".tmp"));
            }

            if (created.NewDirectory)
            {
                System.IO.Directory.Delete(created.Directory, recursive: true);
            }

            DurableFile.SyncDirectory(created.NewDirectory ? _root : created.Directory);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or JournalException)
        {
            _options.Log?.Invoke($"topic '{name}': what its refused creation made in '{created.Directory}' could not all be removed: {e.Message}");
        }
    }
}
