using FastBroker.Journal;
using FastBroker.Storage;

namespace FastBroker.Engine;

// The open's steps on disk (LoadAll): every failure typed, naming the topic, the path and the cause.
internal sealed partial class TopicRegistry
{
    /// <summary>Creates the topics directory (<c>&lt;data&gt;/topics</c>) when it is not there.</summary>
    /// <exception cref="BrokerException">
    /// <see cref="BrokerErrorCode.StorageError"/> (or <see cref="BrokerErrorCode.ResourceExhausted"/>): it cannot be
    /// created or is not a directory (a file, a dangling symbolic link), naming it and the cause.
    /// </exception>
    /// <remarks>The broker's open and the standby's (<c>StandbyReplica</c>, for its copies) both use it.</remarks>
    internal static void CreateRoot(string root)
    {
        try
        {
            System.IO.Directory.CreateDirectory(root);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw RootFailed(root, "cannot be created", e);
        }
    }

    /// <summary>
    /// Calls <paramref name="open"/> with the name and directory of each topic directory under <paramref name="root"/>
    /// (<see cref="ListTopicDirectories(string)"/>: in ordinal order; names that are not topic names are skipped), and
    /// types what a step on disk throws without naming the topic (the directory's listing, the journal's directory) as
    /// every other refusal of the open (<see cref="OpenFailed"/>), never the raw exception. The broker's open
    /// (<see cref="LoadAll"/>) and the standby's (<c>StandbyReplica</c>, its copies) both use it.
    /// </summary>
    /// <exception cref="BrokerException">As <see cref="ListTopicDirectories(string)"/>, <see cref="OpenFailed"/>, or what <paramref name="open"/> throws.</exception>
    internal static void OpenEach(string root, Action<string, string> open)
    {
        foreach (var dir in ListTopicDirectories(root))
        {
            var name = Path.GetFileName(dir);
            if (!TopicName.IsValid(name))
            {
                continue;
            }

            try
            {
                open(name, dir);
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException or JournalException)
            {
                throw OpenFailed(name, dir, e);
            }
        }
    }

    /// <summary>
    /// The entries of the topics directory <paramref name="root"/> that are directories (or links to one), listed whole before any is opened, in
    /// ordinal order of their names: the same data directory opens its topics in the same order whatever the file
    /// system's listing order, so a refused open fails at the same topic each time.
    /// </summary>
    /// <exception cref="BrokerException">
    /// <see cref="BrokerErrorCode.StorageError"/> (or <see cref="BrokerErrorCode.ResourceExhausted"/>): the listing
    /// failed (a directory the broker may not read), naming the directory and the cause.
    /// </exception>
    private static string[] ListTopicDirectories(string root)
    {
        try
        {
            var dirs = System.IO.Directory.GetDirectories(root);
            Array.Sort(dirs, StringComparer.Ordinal);
            return dirs;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw RootFailed(root, "cannot be listed", e);
        }
    }

    /// <summary>
    /// Opens the topic in <paramref name="dir"/>, or removes what a creation that did not complete left there
    /// (<see cref="RemoveUncommitted"/>); throws what a step on disk threw, for <see cref="LoadAll"/> to type.
    /// </summary>
    private void Load(string name, string dir)
    {
        var meta = Path.Combine(dir, MetaFile);
        if (!HasMetaFile(name, meta))
        {
            RemoveUncommitted(_root, name, dir, _options.Log, removeGroupState: true, Step); // a creation that did not complete, group state no topic owns, or damage (refused)
            return;
        }

        var options = ReadMetaFile(name, meta, out var incarnation);
        if (options.Persistent)
        {
            EnsureJournalDirectory(name, dir); // the journal's open would create an empty one in its place
        }

        Put(name, OpenTopic(name, options, dir, incarnation));
    }

    /// <summary>
    /// Refuses a committed persistent topic whose <c>journal/</c> is missing. A creation makes the journal's directory
    /// (its entry synced) before the rename to <c>topic.meta</c> commits it, and a removal renames <c>topic.meta</c>
    /// away before it deletes the journal, so no crash leaves <c>topic.meta</c> of a persistent topic without
    /// <c>journal/</c>: it went afterwards (an operator, a failed restore, another disk), and with it every message of the
    /// topic. Opening it would create an empty journal in its place, restart its offsets at 0 and pull its consumers'
    /// positions back, telling nobody. A <c>journal/</c> that is there but empty is opened as the journal opens it.
    /// The broker's open and the standby's (for its copies) both use it.
    /// </summary>
    /// <exception cref="BrokerException">
    /// <see cref="BrokerErrorCode.StorageError"/>: no entry <c>journal</c> in <paramref name="dir"/>, naming the topic,
    /// the missing path and what the operator can do; nothing is created.
    /// </exception>
    /// <exception cref="IOException">It cannot be looked at (<see cref="UnauthorizedAccessException"/> too).</exception>
    internal static void EnsureJournalDirectory(string name, string dir)
    {
        var journal = Path.Combine(dir, JournalDirectory);
        try
        {
            File.GetAttributes(journal); // an entry (a dangling link too): the journal's open says what is wrong with it
        }
        catch (Exception e) when (e is FileNotFoundException or DirectoryNotFoundException)
        {
            throw new BrokerException(BrokerErrorCode.StorageError, $"topic '{name}': its journal directory '{journal}' is missing beside '{Path.Combine(dir, MetaFile)}', "
                + "so every message of this persistent topic is gone from this node (a topic's creation makes its journal before it commits its settings, so no crash leaves this). "
                + $"The topic is not opened and no empty journal is created in its place: restore the directory (from a backup or a copy), or remove the topic's directory '{dir}' to drop the topic", e);
        }
    }

    /// <summary>
    /// Whether the topic's directory holds a <c>topic.meta</c> entry. Not <see cref="File.Exists"/>: it answers false
    /// for what it cannot look at (a topic directory the broker may not search, EACCES) and for a directory, and the
    /// open would then take a committed topic for what a creation left (removed, or skipped as foreign) instead of
    /// refusing it. A dangling symbolic link is an entry (the read that follows refuses it, naming the file).
    /// </summary>
    /// <exception cref="BrokerException"><see cref="BrokerErrorCode.StorageError"/>: <c>topic.meta</c> is a directory.</exception>
    /// <exception cref="IOException">It cannot be looked at (<see cref="UnauthorizedAccessException"/> too).</exception>
    internal static bool HasMetaFile(string name, string meta)
    {
        FileAttributes attributes;
        try
        {
            attributes = File.GetAttributes(meta);
        }
        catch (Exception e) when (e is FileNotFoundException or DirectoryNotFoundException)
        {
            return false;
        }

        if ((attributes & FileAttributes.Directory) != 0)
        {
            throw new BrokerException(BrokerErrorCode.StorageError, $"topic '{name}': '{meta}' is a directory, not the topic's settings file. {RepairAdvice}");
        }

        return true;
    }

    /// <summary>
    /// The refusal of an open that failed on disk in a topic's directory: a shortage for now, or a storage error, naming
    /// the topic, the directory and the cause. The broker's open and the standby's (for its copies) both use it.
    /// </summary>
    internal static BrokerException OpenFailed(string name, string dir, Exception e) => ResourceShortage.Describe(e) is { } shortage
        ? new BrokerException(BrokerErrorCode.ResourceExhausted, $"topic '{name}' ({dir}) cannot be opened now ({shortage}: {e.Message}); try again later", e)
        : new BrokerException(BrokerErrorCode.StorageError, $"topic '{name}' ({dir}) cannot be opened: {e.Message}", e);

    /// <summary>The refusal of an open whose topics directory cannot be used: a shortage for now, or a storage error.</summary>
    private static BrokerException RootFailed(string root, string what, Exception e) => ResourceShortage.Describe(e) is { } shortage
        ? new BrokerException(BrokerErrorCode.ResourceExhausted, $"the topics directory '{root}' {what} now ({shortage}: {e.Message}); try again later", e)
        : new BrokerException(BrokerErrorCode.StorageError, $"the topics directory '{root}' {what}: {e.Message}", e);
}
