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
    /// without it: an open refuses a persistent topic without its journal, <see cref="EnsureJournalDirectory"/>; also
    /// for an inbox's name, whose other steps are not synced), then the rename of the pending settings to
    /// <c>topic.meta</c>, synced (not for an inbox's name).
    /// </summary>
    private void Commit(string name, string dir, bool durable, bool persistent)
    {
        if (persistent)
        {
            Step($"sync directory {dir}");
            SyncDirectory(name, dir); // the journal directory's entry
        }

        var meta = Path.Combine(dir, MetaFile);
        try
        {
            Step($"rename {Path.Combine(dir, PendingMetaFile)} to {meta}");
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
            Step($"sync directory {dir}");
            SyncDirectory(name, dir); // the rename: the topic exists from here on
        }
    }

    /// <summary>
    /// Tests: called before each step on disk of a topic's creation (<see cref="Create"/>), of the removal of what a
    /// refused one made (<see cref="RemoveCreated"/>) and of the removal of a leftover directory (at open or before a
    /// creation), with what it is about to do; a crash host waits there to be
    /// killed, to test what a kill at that step leaves. Starts as <see cref="BrokerOptions.TopicFileStep"/>.
    /// </summary>
    internal Action<string>? FileStep { get; set; }

    private void Step(string what) => FileStep?.Invoke(what);

    /// <summary>
    /// Takes a committed topic back to a creation that did not complete: <c>topic.meta</c> is renamed to
    /// <see cref="PendingMetaFile"/> and the directory synced, so that whatever a crash leaves of a removal after this
    /// is a directory the next open removes (<see cref="RemoveUncommitted"/>), never a journal without settings.
    /// <paramref name="step"/> (tests) is told each step before it is taken.
    /// </summary>
    internal static void Uncommit(string dir, Action<string>? step = null)
    {
        var meta = Path.Combine(dir, MetaFile);
        var pending = Path.Combine(dir, PendingMetaFile);
        step?.Invoke($"rename {meta} to {pending}");
        File.Move(meta, pending, overwrite: true);
        step?.Invoke($"sync directory {dir}");
        DurableFile.SyncDirectory(dir);
    }

    /// <summary>
    /// Removes a topic directory without <c>topic.meta</c> holding only creation leftovers: the journal first, then
    /// the directory synced, so that the journal's removal is durable before the settings' (a power loss must never
    /// leave a journal without settings, which an open refuses; what it may leave of the rest is a directory the next
    /// open removes again), then the group state beside the pending settings (a standby's deletion or reset of its copy),
    /// then the settings, then the directory, and syncs <paramref name="root"/>.
    /// <paramref name="step"/> (tests) is told each step before it is taken.
    /// </summary>
    internal static void DeleteUncommitted(string root, string dir, Action<string>? step = null)
    {
        var journal = Path.Combine(dir, JournalDirectory);
        if (System.IO.Directory.Exists(journal))
        {
            step?.Invoke($"delete recursively {journal}");
            System.IO.Directory.Delete(journal, recursive: true);
            step?.Invoke($"sync directory {dir}");
            DurableFile.SyncDirectory(dir);
        }

        var pending = Path.Combine(dir, PendingMetaFile);
        var groups = Path.Combine(dir, GroupsDirectory);
        if (File.Exists(pending) && System.IO.Directory.Exists(groups))
        {
            // A standby's deletion or reset of its copy: uncommitted first, then its groups' state (a power loss that
            // keeps it beside no settings leaves group state alone, which the next open takes as such).
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
    /// With <paramref name="removeGroupState"/> (the broker's open) a <c>groups/</c> holding only files is removed with
    /// them, logged with each group's ack floor: a work-queue group's state reaches a standby apart from the topic's
    /// records, so a promoted standby can hold the state of a topic whose creation never reached it; no topic owns it,
    /// and a topic created later under that name would take it over and start the group at the old topic's ack floor.
    /// The standby's open keeps it (its copy of the topic may yet be created beside it) and logs it as kept, with each
    /// group's ack floor. <paramref name="step"/> (tests) is told each step on disk before it is taken.
    /// </summary>
    /// <exception cref="BrokerException"><see cref="BrokerErrorCode.StorageError"/>: a journal without settings.</exception>
    internal static void RemoveUncommitted(string root, string name, string dir, Action<string>? log, bool removeGroupState = false, Action<string>? step = null)
    {
        var (kept, why) = RemoveLeftovers(root, name, dir, log, removeGroupState, step);
        if (kept != LeftoverKept.None)
        {
            log?.Invoke(kept switch
            {
                LeftoverKept.GroupState => $"{why}; kept until the copy of the topic is created beside it",
                LeftoverKept.NotRemoved => removeGroupState
                    ? $"{why}; the broker goes on without a topic '{name}' and leaves the directory as it is: the next open tries the removal again, as does a creation of '{name}' (refused while it fails)"
                    : $"{why}; left as it is, the next open tries the removal again",
                _ => $"{why}; not opened, left as it is",
            });
        }
    }

    /// <summary>Why a topic directory without <c>topic.meta</c> was not removed (<see cref="RemoveLeftovers"/>).</summary>
    private enum LeftoverKept
    {
        /// <summary>Removed (or nothing there).</summary>
        None,

        /// <summary>It holds what no creation makes: left as it is.</summary>
        Foreign,

        /// <summary>It holds a standby's copy of group state, kept for the copy of the topic.</summary>
        GroupState,

        /// <summary>Its removal failed.</summary>
        NotRemoved,
    }

    /// <summary>
    /// Removes a topic directory without <c>topic.meta</c> by the open's rule (<see cref="RemoveUncommitted"/>), logging
    /// the removal; otherwise says why it is kept (<paramref name="removeGroupState"/> false keeps group state). A
    /// directory holding <c>topic.meta</c> (a topic that is not open) is kept as holding what no creation leaves.
    /// </summary>
    /// <exception cref="BrokerException"><see cref="BrokerErrorCode.StorageError"/>: a journal without settings.</exception>
    private static (LeftoverKept Kept, string Why) RemoveLeftovers(string root, string name, string dir, Action<string>? log, bool removeGroupState, Action<string>? step)
    {
        var meta = Path.Combine(dir, MetaFile);
        var pending = Path.Combine(dir, PendingMetaFile);
        var journal = Path.Combine(dir, JournalDirectory);
        if (File.Exists(meta))
        {
            return (LeftoverKept.Foreign, $"topic '{name}': '{dir}' holds a '{MetaFile}' of a topic that is not open");
        }

        if (!File.Exists(pending) && System.IO.Directory.Exists(journal))
        {
            throw new BrokerException(BrokerErrorCode.StorageError, $"topic '{name}': '{meta}' is missing beside the topic's journal. {RepairAdvice}");
        }

        var entries = System.IO.Directory.GetFileSystemEntries(dir).Select(Path.GetFileName).Order(StringComparer.Ordinal).ToArray();
        var groupsPath = Path.Combine(dir, GroupsDirectory);
        var groups = System.IO.Directory.Exists(groupsPath) ? DescribeGroupState(groupsPath) : null;
        if (entries.Any(e => !s_creationLeftovers.Contains(e, StringComparer.Ordinal) && !(groups is not null && e == GroupsDirectory)))
        {
            return (LeftoverKept.Foreign, $"topic '{name}': '{dir}' has no '{MetaFile}' and holds what no topic creation makes ({string.Join(", ", entries)})");
        }

        var held = entries.Length == 0 ? "nothing" : string.Join(", ", entries);
        // Group state beside the pending settings: a standby's deletion or reset of its copy (uncommitted first), or a
        // creation of the copy beside group state that came first, killed; removed by both opens (a standby's primary
        // sends its group state again at the next attach). Group state alone is kept by the standby's open.
        var uncommitted = File.Exists(pending);
        if (groups is not null && !removeGroupState && !uncommitted)
        {
            return (LeftoverKept.GroupState, $"topic '{name}': '{dir}' has no '{MetaFile}' ({held}) and holds work-queue group state ({groups}): this standby's copy of it, which arrives apart from the topic's records, before the copy of the topic was created");
        }

        var removing = dir;
        try
        {
            if (groups is not null)
            {
                // First: a kill after it leaves what a creation leaves, removed by the next open.
                removing = groupsPath;
                step?.Invoke($"delete recursively {groupsPath}");
                System.IO.Directory.Delete(groupsPath, recursive: true);
            }

            removing = dir;
            DeleteUncommitted(root, dir, step);
            log?.Invoke(groups is null
                ? $"topic '{name}': removed '{dir}', left by a creation that did not complete (it held {held}); the topic was never created"
                : uncommitted
                ? $"topic '{name}': removed '{dir}', left by a creation that did not complete (it held {held}) or by a standby's deletion or reset of its copy; the work-queue group state in it ({groups}) belongs to no topic, and a topic created under this name starts its groups anew"
                : $"topic '{name}': removed '{dir}', which held no '{MetaFile}' ({held}): the topic was never created here, and the work-queue group state in it ({groups}; a standby's copy, which arrives apart from the topic's records) belongs to no topic; a topic created under this name starts its groups anew");
            return (LeftoverKept.None, "");
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or JournalException)
        {
            // Group state alone is no creation's leftover (a promoted standby's copy): the line says what it holds, not why.
            return (LeftoverKept.NotRemoved, removing == groupsPath
                ? $"topic '{name}': '{dir}' has no '{MetaFile}' ({held}), and the removal of the work-queue group state in it ('{groupsPath}': {groups}) failed: {e.Message}"
                : $"topic '{name}': '{dir}' has no '{MetaFile}' ({held}), and its removal failed: {e.Message}");
        }
    }

    /// <summary>
    /// Before a creation into <paramref name="dir"/> that exists (an open's removal failed or left it, or a refused
    /// creation's removal failed): removed by the open's rule, group state too, so that the topic takes over nothing
    /// another left there (a journal, its groups' ack floors). When it cannot be removed the creation is refused.
    /// </summary>
    /// <exception cref="BrokerException"><see cref="BrokerErrorCode.StorageError"/>: the directory is kept.</exception>
    private void RemoveBeforeCreation(string name, string dir)
    {
        if (!System.IO.Directory.Exists(dir))
        {
            return;
        }

        var (kept, why) = RemoveLeftovers(_root, name, dir, _options.Log, removeGroupState: true, Step);
        if (kept != LeftoverKept.None)
        {
            throw new BrokerException(BrokerErrorCode.StorageError, $"{why}; the topic is not created, so that it does not take over what is there (a journal, work-queue group state): "
                + (kept == LeftoverKept.NotRemoved ? "try again, or remove the directory" : "move the directory away or remove it") + ", then create the topic");
        }
    }

    /// <summary>The directory holding a topic's work-queue group state, one <c>&lt;group&gt;.state</c> file each.</summary>
    internal const string GroupsDirectory = "groups";

    /// <summary>
    /// The groups in a <c>groups/</c> directory with their ack floors, for a log line ("none" when empty); null when
    /// it holds a directory: that is no group's state, and is left as it is.
    /// </summary>
    private static string? DescribeGroupState(string groups)
    {
        if (System.IO.Directory.EnumerateDirectories(groups).Any())
        {
            return null;
        }

        var described = System.IO.Directory.GetFiles(groups).Order(StringComparer.Ordinal).Select(path => Path.GetExtension(path) == ".state"
            ? $"group '{Path.GetFileNameWithoutExtension(path)}' at ack floor {GroupAckStore.ReadFloor(path)?.ToString(System.Globalization.CultureInfo.InvariantCulture) ?? "unknown: it holds no readable state"}"
            : $"'{Path.GetFileName(path)}'").ToArray();
        return described.Length == 0 ? "none" : string.Join(", ", described);
    }
}
