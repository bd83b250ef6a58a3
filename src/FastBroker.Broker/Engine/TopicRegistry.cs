using System.Collections.Concurrent;
using System.Globalization;
using System.Text;
using FastBroker.Journal;

namespace FastBroker.Engine;

/// <summary>
/// The topics of a broker: created explicitly or on first use, their settings kept in
/// <c>&lt;data&gt;/topics/&lt;name&gt;/topic.meta</c> (plain <c>key=value</c> lines) and their journals beside it, all
/// reopened (and recovered) when the broker opens.
/// </summary>
internal sealed class TopicRegistry : IDisposable
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

    public TopicRegistry(BrokerOptions options)
    {
        _options = options;
        _root = Path.Combine(options.DataDirectory, "topics");
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

    /// <summary>Opens every topic found on disk.</summary>
    public void LoadAll()
    {
        foreach (var dir in System.IO.Directory.EnumerateDirectories(_root))
        {
            var name = Path.GetFileName(dir);
            var meta = Path.Combine(dir, MetaFile);
            if (!TopicName.IsValid(name) || !File.Exists(meta))
            {
                continue;
            }

            var options = ReadMeta(meta);
            _topics[name] = OpenTopic(name, options, dir);
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
            System.IO.Directory.CreateDirectory(dir);
            var topic = OpenTopic(name, options, dir);
            WriteMeta(Path.Combine(dir, MetaFile), options);
            _topics[name] = topic;
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
    }

    private TopicState OpenTopic(string name, TopicOptions options, string dir)
    {
        if (!options.Persistent)
        {
            return new TopicState(name, options, dir, null, new TransientLog(options.TransientCapacity, Math.Min(options.MaxMessageBytes, _options.InputEntryBytes)));
        }

        var journalOptions = JournalOptionsFor(options) with { VerifySealedSegmentsOnOpen = _options.VerifySealedSegmentsOnOpen };
        JournalLog journal;
        try
        {
            journal = JournalLog.Open(Path.Combine(dir, JournalDirectory), journalOptions);
        }
        catch (JournalFullException ex)
        {
            throw new BrokerException(BrokerErrorCode.StorageFull, $"topic '{name}': {ex.Message}", ex);
        }
        catch (JournalException ex)
        {
            throw new BrokerException(BrokerErrorCode.StorageError, $"topic '{name}': {ex.Message}", ex);
        }

        if (!journal.Recovery.IsClean)
        {
            Recoveries.Add((name, journal.Recovery));
        }

        var topic = new TopicState(name, options, dir, journal, null);
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
        JournalOptionsFor(ParseMeta(File.ReadAllText(Path.Combine(topicDirectory, MetaFile))));

    private static void WriteMeta(string path, TopicOptions o)
    {
        var tmp = path + ".tmp";
        File.WriteAllText(tmp, FormatMeta(o));
        File.Move(tmp, path, overwrite: true);
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

    private static TopicOptions ReadMeta(string path) => ParseMeta(File.ReadAllText(path));

    /// <summary>Parses <c>topic.meta</c> text (unknown keys are ignored).</summary>
    internal static TopicOptions ParseMeta(string text)
    {
        var o = TopicOptions.Default;
        foreach (var line in text.Split('\n', StringSplitOptions.RemoveEmptyEntries))
        {
            var eq = line.IndexOf('=', StringComparison.Ordinal);
            if (eq <= 0)
            {
                continue;
            }

            var key = line[..eq];
            var value = line[(eq + 1)..];
            o = key switch
            {
                "persistent" => o with { Persistent = value == "true" },
                "durability" => o with { Durability = Enum.TryParse<Durability>(value, out var d) ? d : o.Durability },
                "acks" => o with { Acks = Enum.TryParse<AckMode>(value, out var a) ? a : o.Acks },
                "maxMessageBytes" => o with { MaxMessageBytes = int.Parse(value, CultureInfo.InvariantCulture) },
                "segmentBytes" => o with { SegmentBytes = long.Parse(value, CultureInfo.InvariantCulture) },
                "transientCapacity" => o with { TransientCapacity = int.Parse(value, CultureInfo.InvariantCulture) },
                "retentionAgeMs" => o with { RetentionAge = TimeSpan.FromMilliseconds(long.Parse(value, CultureInfo.InvariantCulture)) },
                "retentionBytes" => o with { RetentionBytes = long.Parse(value, CultureInfo.InvariantCulture) },
                _ => o,
            };
        }

        return o;
    }
}
