using System.Collections.Concurrent;
using System.Globalization;
using System.Text;
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
/// <c>topic.meta</c> that is empty or unreadable, or a journal beside neither settings file, is therefore damage, and
/// opening refuses it (<see cref="BrokerErrorCode.StorageError"/>, naming the file) rather than guess: defaults would
/// reopen an <c>Fsynced</c> topic as <c>Written</c> and drop its retention.
/// </remarks>
internal sealed partial class TopicRegistry : IDisposable
{
    /// <summary>The settings file in each topic's directory.</summary>
    internal const string MetaFile = "topic.meta";

    /// <summary>The journal directory inside each topic's directory.</summary>
    internal const string JournalDirectory = "journal";

    // Written by every version since the first; "acks" came later and defaults to Local.
    /// <summary>The smallest <c>segmentBytes</c> (<see cref="TopicOptions.SegmentBytes"/>: at least 64 KiB).</summary>
    private const long MinSegmentBytes = 64 * 1024;

    /// <summary>The longest <c>retentionAgeMs</c>: <see cref="TimeSpan.MaxValue"/> in whole milliseconds (922,337,203,685,477).</summary>
    private const long MaxRetentionAgeMs = long.MaxValue / TimeSpan.TicksPerMillisecond;

    private static readonly string[] s_requiredKeys = ["persistent", "durability", "maxMessageBytes", "segmentBytes", "transientCapacity"];

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
        System.IO.Directory.CreateDirectory(_root);
    }

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

    /// <summary>Opens every topic found on disk; on failure closes the ones already opened and throws.</summary>
    /// <exception cref="BrokerException"><see cref="BrokerErrorCode.StorageError"/>: a topic's settings or journal are damaged.</exception>
    public void LoadAll()
    {
        try
        {
            foreach (var dir in System.IO.Directory.EnumerateDirectories(_root))
            {
                var name = Path.GetFileName(dir);
                var meta = Path.Combine(dir, MetaFile);
                if (!TopicName.IsValid(name))
                {
                    continue;
                }

                if (!File.Exists(meta))
                {
                    RemoveUncommitted(_root, name, dir, _options.Log, removeGroupState: true, Step); // a creation that did not complete, group state no topic owns, or damage (refused)
                    continue;
                }

                Put(name, OpenTopic(name, ReadMetaFile(name, meta, out var incarnation), dir, incarnation));
            }
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
            RemoveBeforeCreation(name, dir); // a leftover: taken over, the topic would start with another's journal or group state
            var created = new CreatedFiles(dir);
            Step($"create directory {dir}");
            System.IO.Directory.CreateDirectory(dir);

            // The settings under their pending name first, durably (a journal is never without settings), then the
            // journal, then the rename to topic.meta, the commit point: a crash anywhere before it leaves a directory
            // without topic.meta, which the next open removes (RemoveUncommitted). Inboxes skip the syncs: their
            // settings are fixed, and a lost one is recreated the same on first use.
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

            Put(name, topic);
            _created?.Invoke(topic);
            return topic;
        }
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

        var journalOptions = JournalOptionsFor(options) with { VerifySealedSegmentsOnOpen = _options.VerifySealedSegmentsOnOpen, Log = _options.Log };
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

        return topic;
    }

    /// <summary>The journal settings of a persistent topic (the standby opens its copies with the same segment size).</summary>
    internal static JournalOptions JournalOptionsFor(TopicOptions options) => JournalOptions.Default with
    {
        SegmentSize = (int)Math.Min(options.SegmentBytes, 1 << 30),
        Durability = options.Durability == Durability.Fsynced ? DurabilityPolicy.GroupCommit : DurabilityPolicy.None,
        RetentionMaxAge = options.RetentionAge,
        RetentionMaxBytes = options.RetentionBytes,
    };

    /// <summary>The journal settings of the topic whose directory is <paramref name="topicDirectory"/>, from its meta file (offline tools).</summary>
    internal static JournalOptions JournalOptionsIn(string topicDirectory) =>
        JournalOptionsFor(ReadMetaFile(Path.GetFileName(topicDirectory), Path.Combine(topicDirectory, MetaFile)));

    /// <summary>What an error about a damaged <c>topic.meta</c> tells the operator to do.</summary>
    internal const string RepairAdvice = "The broker does not guess a topic's settings (defaults would reopen an Fsynced topic as Written and drop its retention): "
        + "restore the file (key=value lines: persistent, durability, acks, maxMessageBytes, segmentBytes, transientCapacity, and retentionAgeMs / retentionBytes if set; docs/broker.md), or move the topic's directory away";

    private void WriteMeta(string name, string path, TopicOptions o, ulong incarnation, bool durable)
    {
        try
        {
            if (!durable)
            {
                var tmp = path + ".tmp";
                File.WriteAllText(tmp, FormatMeta(o, incarnation));
                File.Move(tmp, path, overwrite: true);
                return;
            }

            DurableFile.WriteAllBytes(path, Encoding.UTF8.GetBytes(FormatMeta(o, incarnation)));
            DurableFile.SyncDirectory(_root); // the topic directory's entry
            if (!_rootSynced)
            {
                DurableFile.SyncDirectory(_options.DataDirectory); // the topics directory's entry, once per process
                _rootSynced = true;
            }
        }
        catch (Exception e) when (ResourceShortage.Describe(e) is { } shortage)
        {
            throw new BrokerException(BrokerErrorCode.ResourceExhausted, $"topic '{name}': its settings could not be written to '{path}' now ({shortage}: {e.Message}); try again later", e);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or JournalException)
        {
            throw new BrokerException(BrokerErrorCode.StorageError, $"topic '{name}': its settings could not be written to '{path}': {e.Message}", e);
        }
    }

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

    /// <summary>A topic's settings as the <c>topic.meta</c> text (what the replicator sends the standby).</summary>
    internal static string FormatMeta(TopicOptions o)
    {
        var sb = new StringBuilder();
        sb.Append("persistent=").Append(o.Persistent ? "true" : "false").Append('\n');
        sb.Append("durability=").Append(o.Durability.ToString()).Append('\n');
        sb.Append("acks=").Append(o.Acks.ToString()).Append('\n');
        sb.Append("maxMessageBytes=").Append(o.MaxMessageBytes.ToString(CultureInfo.InvariantCulture)).Append('\n');
        sb.Append("segmentBytes=").Append(o.SegmentBytes.ToString(CultureInfo.InvariantCulture)).Append('\n');
        sb.Append("transientCapacity=").Append(o.TransientCapacity.ToString(CultureInfo.InvariantCulture)).Append('\n');
        if (o.RetentionAge is { } age)
        {
            sb.Append("retentionAgeMs=").Append(((long)age.TotalMilliseconds).ToString(CultureInfo.InvariantCulture)).Append('\n');
        }

        if (o.RetentionBytes is { } bytes)
        {
            sb.Append("retentionBytes=").Append(bytes.ToString(CultureInfo.InvariantCulture)).Append('\n');
        }

        return sb.ToString();
    }

    /// <summary>
    /// Reads a topic's <c>topic.meta</c>; an empty, unreadable or incomplete file is refused (never taken for defaults).
    /// </summary>
    /// <exception cref="BrokerException"><see cref="BrokerErrorCode.StorageError"/>, naming the topic, the file and what is wrong.</exception>
    internal static TopicOptions ReadMetaFile(string name, string path) => ReadMetaFile(name, path, out _);

    /// <summary>As the overload without <paramref name="incarnation"/>, and also the creation's id the file carries (0: none).</summary>
    /// <exception cref="BrokerException">As the overload without <paramref name="incarnation"/>.</exception>
    internal static TopicOptions ReadMetaFile(string name, string path, out ulong incarnation)
    {
        try
        {
            var text = File.ReadAllText(path);
            var options = ParseMeta(text);
            incarnation = IncarnationOf(text);
            return options;
        }
        catch (Exception e) when (e is InvalidDataException or IOException or UnauthorizedAccessException)
        {
            throw new BrokerException(BrokerErrorCode.StorageError, $"topic '{name}': '{path}' {e.Message}. {RepairAdvice}", e);
        }
    }

    /// <summary>
    /// Parses <c>topic.meta</c> text. The keys every version has written (persistent, durability, maxMessageBytes,
    /// segmentBytes, transientCapacity) must be there, every known value must parse, every number must be in its
    /// setting's range (maxMessageBytes 1 to 2^31 - 1, segmentBytes from 64 KiB, transientCapacity 1 to 2^24 (<see cref="TopicOptions.MaxTransientCapacity"/>),
    /// retentionAgeMs 1 to 922,337,203,685,477 (<see cref="TimeSpan.MaxValue"/>), retentionBytes from 1), and the settings
    /// must be valid; unknown keys are ignored (a newer version's).
    /// </summary>
    /// <exception cref="InvalidDataException">
    /// Empty, a line without <c>=</c>, a required key missing, a value that does not parse, a number out of its setting's
    /// range (named with the value and the range), or invalid settings.
    /// </exception>
    internal static TopicOptions ParseMeta(string text)
    {
        if (string.IsNullOrWhiteSpace(text))
        {
            throw new InvalidDataException("is empty");
        }

        var o = TopicOptions.Default;
        var seen = new HashSet<string>(StringComparer.Ordinal);
        foreach (var line in text.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
        {
            var eq = line.IndexOf('=', StringComparison.Ordinal);
            if (eq <= 0)
            {
                throw new InvalidDataException($"has a line that is not key=value: '{line}'");
            }

            var key = line[..eq];
            var value = line[(eq + 1)..];
            seen.Add(key);
            o = key switch
            {
                "persistent" => o with { Persistent = value switch { "true" => true, "false" => false, _ => throw Bad(key, value) } },
                "durability" => o with { Durability = Enum.TryParse<Durability>(value, out var d) && Enum.IsDefined(d) ? d : throw Bad(key, value) },
                "acks" => o with { Acks = Enum.TryParse<AckMode>(value, out var a) && Enum.IsDefined(a) ? a : throw Bad(key, value) },
                "maxMessageBytes" => o with { MaxMessageBytes = (int)Number(key, value, 1, int.MaxValue, "") },
                "segmentBytes" => o with { SegmentBytes = Number(key, value, MinSegmentBytes, long.MaxValue, "") },
                "transientCapacity" => o with { TransientCapacity = (int)Number(key, value, 1, TopicOptions.MaxTransientCapacity, "") },
                "retentionAgeMs" => o with { RetentionAge = TimeSpan.FromMilliseconds(Number(key, value, 1, MaxRetentionAgeMs, " ms")) },
                "retentionBytes" => o with { RetentionBytes = Number(key, value, 1, long.MaxValue, "") },
                _ => o,
            };
        }

        foreach (var required in s_requiredKeys)
        {
            if (!seen.Contains(required))
            {
                throw new InvalidDataException($"has no '{required}' line");
            }
        }

        try
        {
            o.Validate();
        }
        catch (BrokerException e)
        {
            throw new InvalidDataException($"holds invalid settings: {e.Message}", e);
        }

        return o;

        static InvalidDataException Bad(string key, string value) => new($"has a value for '{key}' that does not parse: '{value}'");
    }

    /// <summary>As <see cref="ParseMeta(string)"/>, its error prefixed by <paramref name="what"/> (which topic's settings, from where).</summary>
    /// <exception cref="InvalidDataException">As <see cref="ParseMeta(string)"/>: "<paramref name="what"/> has a value for …".</exception>
    internal static TopicOptions ParseMeta(string text, string what)
    {
        try
        {
            return ParseMeta(text);
        }
        catch (InvalidDataException e)
        {
            throw new InvalidDataException($"{what} {e.Message}", e);
        }
    }

    /// <summary>
    /// A numeric setting of <c>topic.meta</c>: an integer (digits, a '-' before them allowed so that a negative value is
    /// reported as out of range) from <paramref name="min"/> to <paramref name="max"/>, or an
    /// <see cref="InvalidDataException"/> naming the setting, the value and the range.
    /// </summary>
    private static long Number(string key, string value, long min, long max, string unit)
    {
        var digits = value.StartsWith('-') ? value.AsSpan(1) : value.AsSpan();
        if (digits.IsEmpty || digits.ContainsAnyExceptInRange('0', '9'))
        {
            throw new InvalidDataException($"has a value for '{key}' that does not parse: '{value}'");
        }

        if (!long.TryParse(value, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out var n) || n < min || n > max)
        {
            throw new InvalidDataException(string.Create(CultureInfo.InvariantCulture, $"has a value for '{key}' out of range: '{value}' ({min} to {max}{unit})"));
        }

        return n;
    }
}
