using System.CommandLine;
using System.Globalization;

namespace FastBroker.Cli.Commands;

/// <summary>
/// <c>fastbroker serve</c>'s topic flags: the settings of topics created on first use (<c>--retention</c>,
/// <c>--retention-bytes</c>, <c>--max-message-size</c>, <c>--segment-size</c>, with <c>--fsync</c> and <c>--acks</c>)
/// and the topics declared at start (<c>--topic name:setting=value,…</c>, <see cref="BrokerOptions.Topics"/>).
/// </summary>
internal static partial class ServeCommand
{
    private static TopicFlags CreateTopicFlags() => new(
        new Option<string?>("--retention") { Description = "New topics delete whole sealed segments older than this: a number and ms, s, m, h or d (7d, 12h); none = keep (the default)." },
        new Option<string?>("--retention-bytes") { Description = "New topics delete their oldest sealed segments while larger than this: bytes, or a number and K, M, G or T (powers of 1024: 10G); none = no limit (the default)." },
        new Option<string?>("--max-message-size") { Description = "New topics' largest message (key + headers + payload), as for --retention-bytes; at most half the segment size. [default: 1M]" },
        new Option<string?>("--segment-size") { Description = "New persistent topics' journal segment size, as for --retention-bytes: a multiple of 4096, at least 64K. [default: 64M]" },
        new Option<string[]>("--topic") { Description = "A topic to create at start if missing (repeatable): name, or name:setting,... with settings transient, transient-capacity=N, fsync, acks=local|standby-received|standby-durable, retention=, retention-bytes=, max-message-size=, segment-size= (as the flags); the rest as for new topics. An existing topic keeps its settings (a difference is logged).", AllowMultipleArgumentsPerToken = false });

    /// <summary>The settings of new topics and the declared topics, or the first errors in the flags' terms.</summary>
    private static (TopicOptions Defaults, Dictionary<string, TopicOptions> Declared) BuildTopics(TopicFlags flags, Func<Option, string?> single, string[] topics, bool fsync, AckMode acks, List<string> errors)
    {
        var defaults = TopicOptions.Default with { Durability = fsync ? Durability.Fsynced : Durability.Written, Acks = acks };
        foreach (var (flag, key) in new[] { (flags.Retention, "retention"), (flags.RetentionBytes, "retention-bytes"), (flags.MaxMessageSize, "max-message-size"), (flags.SegmentSize, "segment-size") })
        {
            if (single(flag) is { } value)
            {
                defaults = Apply(defaults, key, value, errors, flag.Name);
            }
        }
        if (errors.Count == 0 && Invalid(defaults) is { } why)
        {
            errors.Add($"the settings of new topics (--max-message-size, --segment-size, --retention, --retention-bytes): {why}");
        }

        var declared = new Dictionary<string, TopicOptions>(StringComparer.Ordinal);
        foreach (var spec in topics)
        {
            var colon = spec.IndexOf(':', StringComparison.Ordinal);
            var name = colon < 0 ? spec : spec[..colon];
            if (TopicName.Validate(name) is { } nameError)
            {
                errors.Add($"--topic '{spec}': '{name}' is not a topic name: {nameError}");
                continue;
            }

            if (declared.ContainsKey(name))
            {
                errors.Add($"--topic '{spec}': topic '{name}' is declared twice");
                continue;
            }

            var options = defaults;
            var before = errors.Count;
            foreach (var setting in colon < 0 ? [] : spec[(colon + 1)..].Split(',', StringSplitOptions.TrimEntries))
            {
                var equals = setting.IndexOf('=', StringComparison.Ordinal);
                var key = equals < 0 ? setting : setting[..equals];
                var value = equals < 0 ? null : setting[(equals + 1)..];
                options = Apply(options, key, value, errors, $"--topic '{spec}': {key}");
            }

            if (errors.Count == before && Invalid(options) is { } invalid)
            {
                errors.Add($"--topic '{spec}': {invalid}");
            }

            declared[name] = options;
        }

        return (defaults, declared);
    }

    /// <summary>One setting: a flag's value, or one of <c>--topic</c>'s (null value: a setting without <c>=</c>).</summary>
    private static TopicOptions Apply(TopicOptions options, string key, string? value, List<string> errors, string what)
    {
        switch (key)
        {
            case "transient" when value is null:
                return options with { Persistent = false };
            case "fsync" when value is null:
                return options with { Durability = Durability.Fsynced };
            case "acks" when value is "local" or "standby-received" or "standby-durable":
                return options with { Acks = ParseAcks(value) };
            case "acks":
                errors.Add($"{what}: expected local, standby-received or standby-durable, got '{value}'");
                return options;
            case "transient-capacity" when int.TryParse(value, NumberStyles.None, CultureInfo.InvariantCulture, out var slots):
                return options with { TransientCapacity = slots };
            case "retention" when value == "none":
                return options with { RetentionAge = null };
            case "retention" when TryParseDuration(value, out var age):
                return options with { RetentionAge = age };
            case "retention":
                errors.Add($"{what}: expected a number and ms, s, m, h or d (7d, 12h, 500ms), or none; got '{value}'");
                return options;
            case "retention-bytes" when value == "none":
                return options with { RetentionBytes = null };
            case "retention-bytes" or "max-message-size" or "segment-size" when TryParseSize(value, out var bytes):
                return key switch
                {
                    "retention-bytes" => options with { RetentionBytes = bytes },
                    "max-message-size" when bytes <= int.MaxValue => options with { MaxMessageBytes = (int)bytes },
                    "segment-size" => options with { SegmentBytes = bytes },
                    _ => Refuse(options, errors, $"{what}: {bytes} bytes is more than a message can be"),
                };
            case "retention-bytes" or "max-message-size" or "segment-size" or "transient-capacity":
                errors.Add($"{what}: expected {(key == "transient-capacity" ? "a whole number (a power of two)" : $"a number of bytes, or a number and K, M, G or T (powers of 1024){(key == "retention-bytes" ? ", or none" : "")}")}, got '{value}'");
                return options;
            default:
                errors.Add($"{what}: unknown setting (expected transient, transient-capacity=N, fsync, acks=, retention=, retention-bytes=, max-message-size= or segment-size=)");
                return options;
        }
    }

    private static TopicOptions Refuse(TopicOptions options, List<string> errors, string error)
    {
        errors.Add(error);
        return options;
    }

    /// <summary>Why the broker would refuse <paramref name="options"/>, with its own message, or null.</summary>
    private static string? Invalid(TopicOptions options)
    {
        try
        {
            options.Validate();
            return null;
        }
        catch (BrokerException e)
        {
            // In the flags' terms: the broker's message names the TopicOptions properties.
            return e.Message.Replace("SegmentBytes", "segment-size", StringComparison.Ordinal).Replace("MaxMessageBytes", "max-message-size", StringComparison.Ordinal)
                .Replace("RetentionAge", "retention", StringComparison.Ordinal).Replace("RetentionBytes", "retention-bytes", StringComparison.Ordinal)
                .Replace("TransientCapacity", "transient-capacity", StringComparison.Ordinal);
        }
    }

    /// <summary><c>500ms</c>, <c>30s</c>, <c>15m</c>, <c>12h</c>, <c>7d</c>: a whole positive number and a unit.</summary>
    internal static bool TryParseDuration(string? text, out TimeSpan value)
    {
        value = default;
        if (string.IsNullOrEmpty(text))
        {
            return false;
        }

        var digits = 0;
        while (digits < text.Length && char.IsAsciiDigit(text[digits]))
        {
            digits++;
        }

        if (digits == 0 || !long.TryParse(text.AsSpan(0, digits), NumberStyles.None, CultureInfo.InvariantCulture, out var n) || n <= 0)
        {
            return false;
        }

        long? ms = text[digits..] switch
        {
            "ms" => n,
            "s" => n <= long.MaxValue / 1000 ? n * 1000 : null,
            "m" => n <= long.MaxValue / 60_000 ? n * 60_000 : null,
            "h" => n <= long.MaxValue / 3_600_000 ? n * 3_600_000 : null,
            "d" => n <= long.MaxValue / 86_400_000 ? n * 86_400_000 : null,
            _ => null,
        };
        if (ms is not { } whole || whole > (long)TimeSpan.MaxValue.TotalMilliseconds)
        {
            return false;
        }

        value = TimeSpan.FromMilliseconds(whole);
        return true;
    }

    /// <summary>Bytes, or a whole number and K, M, G or T (also KB/KiB and so on: powers of 1024).</summary>
    internal static bool TryParseSize(string? text, out long value)
    {
        value = 0;
        if (string.IsNullOrEmpty(text))
        {
            return false;
        }

        var digits = 0;
        while (digits < text.Length && char.IsAsciiDigit(text[digits]))
        {
            digits++;
        }

        if (digits == 0 || !long.TryParse(text.AsSpan(0, digits), NumberStyles.None, CultureInfo.InvariantCulture, out var n))
        {
            return false;
        }

        var shift = text[digits..].ToUpperInvariant() switch
        {
            "" or "B" => 0,
            "K" or "KB" or "KIB" => 10,
            "M" or "MB" or "MIB" => 20,
            "G" or "GB" or "GIB" => 30,
            "T" or "TB" or "TIB" => 40,
            _ => -1,
        };
        if (shift < 0 || n > long.MaxValue >> shift)
        {
            return false;
        }

        value = n << shift;
        return true;
    }

    /// <summary>serve's topic flags (strings: their units are parsed by <see cref="BuildTopics"/>).</summary>
    private sealed record TopicFlags(Option<string?> Retention, Option<string?> RetentionBytes, Option<string?> MaxMessageSize, Option<string?> SegmentSize, Option<string[]> Topics)
    {
        public Option[] All => [Retention, RetentionBytes, MaxMessageSize, SegmentSize, Topics];
    }
}
