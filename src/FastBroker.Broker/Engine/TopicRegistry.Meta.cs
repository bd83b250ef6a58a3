using System.Globalization;
using System.Text;
using FastBroker.Journal;
using FastBroker.Storage;

namespace FastBroker.Engine;

// A topic's settings on disk: topic.meta, written at creation, read (and refused when damaged) at open.
internal sealed partial class TopicRegistry
{
    // Written by every version since the first; "acks" came later and defaults to Local.
    /// <summary>The smallest <c>segmentBytes</c> (<see cref="TopicOptions.SegmentBytes"/>: at least 64 KiB).</summary>
    private const long MinSegmentBytes = 64 * 1024;

    /// <summary>The longest <c>retentionAgeMs</c>: <see cref="TimeSpan.MaxValue"/> in whole milliseconds (922,337,203,685,477).</summary>
    private const long MaxRetentionAgeMs = long.MaxValue / TimeSpan.TicksPerMillisecond;

    private static readonly string[] s_requiredKeys = ["persistent", "durability", "maxMessageBytes", "segmentBytes", "transientCapacity"];

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
