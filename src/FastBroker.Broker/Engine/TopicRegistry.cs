using System.Collections.Concurrent;
using FastBroker.Journal;
using FastBroker.Storage;

namespace FastBroker.Engine;

/// <summary>
/// The topics of a broker: created explicitly or on first use, their settings kept in
/// <c>&lt;data&gt;/topics/&lt;name&gt;/topic.meta</c> (plain <c>key=value</c> lines) and their journals beside it, all
/// reopened (and recovered) when the broker opens.
/// </summary>
/// <remarks>
/// A creation writes the settings as <c>topic.meta.creating</c> (file and directory entries fsync'd) before the
/// topic's journal exists, and renames them to <c>topic.meta</c> (synced) once the journal is there: the rename is the
/// commit point. After a crash a topic directory holds its settings whole and its journal, or it holds no
/// <c>topic.meta</c> and is what a creation that did not complete left, which opening removes and logs. A
/// <c>topic.meta</c> that is empty or unreadable, a journal beside neither settings file, or a persistent topic's
/// <c>topic.meta</c> without its journal (<see cref="EnsureJournalDirectory"/>) is therefore damage, and opening
/// refuses it (<see cref="BrokerErrorCode.StorageError"/>, naming the file) rather than guess: defaults would reopen an
/// <c>Fsynced</c> topic as <c>Written</c> and drop its retention, an empty journal would restart the topic at offset 0.
/// </remarks>
internal sealed partial class TopicRegistry : IDisposable
{
    /// <summary>The settings file in each topic's directory.</summary>
    internal const string MetaFile = "topic.meta";

    /// <summary>The journal directory inside each topic's directory.</summary>
    internal const string JournalDirectory = "journal";

    private readonly ConcurrentDictionary<string, TopicState> _topics = new(StringComparer.Ordinal);
    private readonly object _createGate = new();
    private readonly BrokerOptions _options;
    private readonly string _root;
    private Action<TopicState>? _created;
    private bool _rootSynced; // under _createGate

    public TopicRegistry(BrokerOptions options)
    {
        _options = options;
        _root = Path.Combine(options.DataDirectory, "topics");
        FileStep = options.TopicFileStep;
        CreateRoot(_root);
    }

    /// <summary>Tests: told each topic this registry opens (at its open or creation), once its journal is open.</summary>
    internal Action<TopicState>? TopicOpened { get; set; }

    /// <summary>
    /// Called (under the creation lock) with each topic created after it is set, before the topic is listed: what must
    /// hold before any publisher or reader can find it (a failover pair's <see cref="ReplicationGate.Adopt"/>).
    /// </summary>
    public Action<TopicState>? Adopt { get; set; }

    /// <summary>Journal recovery reports of topics opened at start (only those that dropped something).</summary>
    public List<(string Topic, RecoveryReport Report)> Recoveries { get; } = [];

    public ICollection<TopicState> All => _topics.Values;

    /// <summary>Called (under the creation lock) for every topic created after start, so pattern subscriptions can attach.</summary>
    public void OnCreated(Action<TopicState> callback)
    {
        lock (_createGate)
        {
            _created += callback;
        }
    }

    public void RemoveOnCreated(Action<TopicState> callback)
    {
        lock (_createGate)
        {
            _created -= callback;
        }
    }

    /// <summary>Snapshot of the topics plus a callback registration, atomically (no topic is missed or seen twice).</summary>
    public TopicState[] SubscribeToCreations(Action<TopicState> callback)
    {
        lock (_createGate)
        {
            _created += callback;
            return [.. _topics.Values];
        }
    }

    /// <summary>
    /// Opens every topic found on disk; on failure closes the ones already opened and throws, changing nothing more on
    /// disk (what was removed before it by the open's rule, <see cref="RemoveUncommitted"/>, stays removed).
    /// </summary>
    /// <exception cref="BrokerException">
    /// <see cref="BrokerErrorCode.StorageError"/>: the topics directory cannot be listed, or a topic's directory,
    /// settings or journal cannot be read (a directory the broker may not read, a <c>topic.meta</c> that is a
    /// directory, a journal that is a file) or are damaged, naming the topic, the path and the cause (inside, as the
    /// inner exception); <see cref="BrokerErrorCode.ResourceExhausted"/> when the system ran short (out of
    /// descriptors, say; <see cref="ResourceShortage"/>); <see cref="BrokerErrorCode.StorageFull"/>.
    /// </exception>
    public void LoadAll()
    {
        try
        {
            OpenEach(_root, Load);
        }
        catch
        {
            Dispose();
            throw;
        }
    }

    public bool TryGet(string name, out TopicState topic) => _topics.TryGetValue(name, out topic!);

    /// <summary>
    /// The topic for a publish named by UTF-8 bytes (the server's path): allocation-free for an existing topic;
    /// creates it on first use when auto-creation is on. False with the reason when it cannot be used.
    /// </summary>
    public bool TryGetForUse(ReadOnlySpan<byte> utf8, out TopicState topic, out BrokerErrorCode error, out string? reason)
    {
        error = BrokerErrorCode.None;
        reason = null;
        Span<char> chars = stackalloc char[TopicName.MaxLength + 1];
        if (utf8.IsEmpty || utf8.Length > TopicName.MaxLength || !System.Text.Unicode.Utf8.IsValid(utf8))
        {
            topic = null!;
            error = BrokerErrorCode.InvalidName;
            reason = utf8.IsEmpty ? "topic name is empty" : $"invalid topic name: not valid UTF-8 or longer than {TopicName.MaxLength} characters";
            return false;
        }

        var n = System.Text.Encoding.UTF8.GetChars(utf8, chars);
        var lookup = _topics.GetAlternateLookup<ReadOnlySpan<char>>();
        if (lookup.TryGetValue(chars[..n], out topic!))
        {
            return true;
        }

        try
        {
            topic = GetForUse(new string(chars[..n]));
            return true;
        }
        catch (BrokerException ex)
        {
            error = ex.Code;
            reason = ex.Message;
            return false;
        }
    }

    /// <summary>The topic for a publish or subscribe: existing, or created when auto-creation is on.</summary>
    public TopicState GetForUse(string name)
    {
        if (_topics.TryGetValue(name, out var topic))
        {
            return topic;
        }

        TopicName.EnsureValid(name);
        if (!_options.AutoCreateTopics && !IsInbox(name))
        {
            throw new BrokerException(BrokerErrorCode.UnknownTopic, $"topic '{name}' does not exist and auto-creation is off");
        }

        return Create(name, IsInbox(name) ? InboxOptions : _options.DefaultTopicOptions, mustBeNew: false);
    }

    /// <summary>Settings of auto-created request-reply inboxes (<c>_inbox.…</c>, <c>_reply.…</c>): transient and small.</summary>
    public static TopicOptions InboxOptions { get; } = TopicOptions.Default with { Persistent = false, TransientCapacity = 1024 };

    /// <summary>True for the reserved request-reply inbox prefixes, auto-created as transient topics.</summary>
    public static bool IsInbox(string name) => name.StartsWith("_inbox.", StringComparison.Ordinal) || name.StartsWith("_reply.", StringComparison.Ordinal);

    /// <summary>Creates a topic; an existing one with the same settings is returned, with other settings refused.</summary>
    /// <exception cref="BrokerException">
    /// <see cref="BrokerErrorCode.InvalidName"/>, <see cref="BrokerErrorCode.InvalidArgument"/> (the settings),
    /// <see cref="BrokerErrorCode.TopicConflict"/>; a failure on disk (the topic's directory, settings or journal) is
    /// <see cref="BrokerErrorCode.StorageError"/> naming the topic and the cause, <see cref="BrokerErrorCode.ResourceExhausted"/>
    /// when the system ran short (<see cref="ResourceShortage"/>), or <see cref="BrokerErrorCode.StorageFull"/>; what the
    /// creation made is removed, and nothing is registered.
    /// </exception>
    public TopicState Create(string name, TopicOptions options, bool mustBeNew)
    {
        TopicName.EnsureValid(name);
        options.Validate();
        lock (_createGate)
        {
            if (_topics.TryGetValue(name, out var existing))
            {
                if (mustBeNew && existing.Options != options)
                {
                    throw new BrokerException(BrokerErrorCode.TopicConflict, $"topic '{name}' exists with other settings");
                }

                return existing;
            }

            var dir = Path.Combine(_root, name);
            TopicState topic;
            try
            {
                topic = CreateOnDisk(name, dir, options);
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException or JournalException)
            {
                // The one mapping for what a step on disk threw without naming it itself (the directory's mkdir, a
                // leftover's listing, the journal's own mkdir): every caller (CreateTopic, a publish, subscribe or join
                // that creates the topic on first use, the server's requests) gets the typed error, never the raw one.
                throw CreationFailed(name, dir, e);
            }

            Adopt?.Invoke(topic);
            Put(name, topic);
            _created?.Invoke(topic);
            return topic;
        }
    }

    /// <summary>The refusal of a creation that failed on disk: a shortage for now, or a storage error, naming the cause.</summary>
    private static BrokerException CreationFailed(string name, string dir, Exception e) => ResourceShortage.Describe(e) is { } shortage
        ? new BrokerException(BrokerErrorCode.ResourceExhausted, $"topic '{name}' could not be created in '{dir}' now ({shortage}: {e.Message}); the topic does not exist, try again later", e)
        : new BrokerException(BrokerErrorCode.StorageError, $"topic '{name}' could not be created in '{dir}': {e.Message}; the topic does not exist", e);

    /// <summary>
    /// A creation's steps on disk, under the creation lock; all or nothing: a failure after the directory exists
    /// removes what the creation made (<see cref="RemoveCreated"/>) and is thrown as it is.
    /// </summary>
    private TopicState CreateOnDisk(string name, string dir, TopicOptions options)
    {
        RemoveBeforeCreation(name, dir); // a leftover: taken over, the topic would start with another's journal or group state
        var created = new CreatedFiles(dir);
        Step($"create directory {dir}");
        System.IO.Directory.CreateDirectory(dir);

        // The settings under their pending name first, durably (a journal is never without settings), then the
        // journal, then the rename to topic.meta, the commit point: a crash anywhere before it leaves a directory
        // without topic.meta, which the next open removes (RemoveUncommitted). Inboxes skip the syncs: their
        // settings are fixed, and a lost one is recreated the same on first use (but for the journal directory's entry
        // of one created persistent: an open refuses topic.meta without its journal, Commit).
        var durable = !IsInbox(name);
        TopicState? topic = null;
        try
        {
            var incarnation = NewIncarnation();
            Step($"write {Path.Combine(dir, PendingMetaFile)}");
            WriteMeta(name, Path.Combine(dir, PendingMetaFile), options, incarnation, durable);
            Step($"open journal in {dir}");
            topic = OpenTopic(name, options, dir, incarnation);
            Commit(name, dir, durable, options.Persistent);
        }
        catch
        {
            // All or nothing: settings left behind would open the topic at the next start, with the settings of a
            // creation that was refused.
            topic?.Dispose();
            RemoveCreated(name, created);
            throw;
        }

        return topic;
    }

    public void Dispose()
    {
        foreach (var t in _topics.Values)
        {
            t.Dispose();
        }

        _topics.Clear();
        Volatile.Write(ref _snapshot, []);
    }

    private TopicState OpenTopic(string name, TopicOptions options, string dir, ulong incarnation)
    {
        if (!options.Persistent)
        {
            return new TopicState(name, options, dir, null, new TransientLog(options.TransientCapacity, Math.Min(options.MaxMessageBytes, _options.InputEntryBytes)), incarnation);
        }

        // Retention is held until the broker attaches its floor (Broker.AttachRetentionFloor), which it can tell only once
        // every topic is open and its groups' state files are read: a pass of the journal's flusher before that (a
        // second after the open) deleted what a group had not acked.
        var journalOptions = JournalOptionsFor(options) with { VerifySealedSegmentsOnOpen = _options.VerifySealedSegmentsOnOpen, Log = _options.Log, RetentionFloor = s_heldUntilAttached };
        JournalLog journal;
        try
        {
            journal = JournalLog.Open(Path.Combine(dir, JournalDirectory), journalOptions);
        }
        catch (JournalFullException ex)
        {
            throw new BrokerException(BrokerErrorCode.StorageFull, $"topic '{name}': {ex.Message}", ex);
        }
        catch (JournalException ex) when (ResourceShortage.Describe(ex) is { } shortage)
        {
            // The system could not do it now (out of descriptors, say: the journal carries the errno): the topic is not
            // opened, nothing in it changed, and the same publish or subscribe may succeed later.
            throw new BrokerException(BrokerErrorCode.ResourceExhausted, $"topic '{name}': its journal cannot be opened now ({shortage}: {ex.Message}); the topic is not open, try again later", ex);
        }
        catch (JournalException ex)
        {
            throw new BrokerException(BrokerErrorCode.StorageError, $"topic '{name}': {ex.Message}", ex);
        }

        if (!journal.Recovery.IsClean)
        {
            Recoveries.Add((name, journal.Recovery));
        }

        var topic = new TopicState(name, options, dir, journal, null, incarnation) { Log = _options.Log };
        if (options.Durability == Durability.Fsynced)
        {
            topic.Durability = new DurabilityNotifier(topic, journal);
            topic.Durability.Start();
        }

        TopicOpened?.Invoke(topic);
        return topic;
    }

    /// <summary>The retention floor a topic's journal opens with: everything is kept until the broker attaches its own.</summary>
    private static readonly Func<long> s_heldUntilAttached = static () => long.MinValue;

    /// <summary>The journal settings of a persistent topic (the standby opens its copies with the same segment size).</summary>
    internal static JournalOptions JournalOptionsFor(TopicOptions options) => JournalOptions.Default with
    {
        SegmentSize = (int)Math.Min(options.SegmentBytes, 1 << 30),
        Durability = options.Durability == Durability.Fsynced ? DurabilityPolicy.GroupCommit : DurabilityPolicy.None,
        RetentionMaxAge = options.RetentionAge,
        RetentionMaxBytes = options.RetentionBytes,
    };

    private static void SyncDirectory(string name, string directory)
    {
        try
        {
            DurableFile.SyncDirectory(directory);
        }
        catch (JournalException e)
        {
            throw new BrokerException(BrokerErrorCode.StorageError, $"topic '{name}': {e.Message}", e);
        }
    }
}
