namespace FastBroker;

/// <summary>
/// A subscription pattern over topic names: tokens separated by '.', where '*' matches exactly one token and a
/// final '&gt;' matches one or more remaining tokens (the NATS subject rules). A pattern without wildcards
/// matches only the topic of that name.
/// </summary>
public sealed class TopicPattern : IEquatable<TopicPattern>
{
    private readonly string[] _tokens;

    private TopicPattern(string text, string[] tokens, bool hasWildcards)
    {
        Text = text;
        _tokens = tokens;
        HasWildcards = hasWildcards;
    }

    /// <summary>The pattern as written.</summary>
    public string Text { get; }

    /// <summary>False when the pattern names a single topic.</summary>
    public bool HasWildcards { get; }

    /// <summary>Parses a pattern, throwing <see cref="BrokerException"/> (<see cref="BrokerErrorCode.InvalidName"/>) with the reason.</summary>
    public static TopicPattern Parse(string pattern)
    {
        if (TryParse(pattern, out var parsed, out var reason))
        {
            return parsed;
        }

        throw new BrokerException(BrokerErrorCode.InvalidName, $"invalid topic pattern '{TopicName.Printable(pattern ?? "")}': {reason}");
    }

    /// <summary>Parses a pattern; on failure returns false with the reason.</summary>
    public static bool TryParse(string? pattern, [System.Diagnostics.CodeAnalysis.NotNullWhen(true)] out TopicPattern? parsed, out string reason)
    {
        parsed = null;
        if (string.IsNullOrEmpty(pattern))
        {
            reason = "empty";
            return false;
        }

        if (pattern.Length > TopicName.MaxLength)
        {
            reason = $"longer than {TopicName.MaxLength} characters";
            return false;
        }

        var tokens = pattern.Split('.');
        var wild = false;
        for (var i = 0; i < tokens.Length; i++)
        {
            var t = tokens[i];
            if (t.Length == 0)
            {
                reason = "empty token (leading, trailing or doubled '.')";
                return false;
            }

            if (t == "*")
            {
                wild = true;
                continue;
            }

            if (t == ">")
            {
                if (i != tokens.Length - 1)
                {
                    reason = "'>' must be the last token";
                    return false;
                }

                wild = true;
                continue;
            }

            foreach (var c in t)
            {
                if (!TopicName.IsNameChar(c))
                {
                    reason = c is '*' or '>' ? "a wildcard must be a whole token" : $"character '{TopicName.Printable(c.ToString())}' is not allowed";
                    return false;
                }
            }
        }

        reason = "";
        parsed = new TopicPattern(pattern, tokens, wild);
        return true;
    }

    /// <summary>True when <paramref name="topic"/> (a valid topic name) matches this pattern. Allocation-free.</summary>
    public bool Matches(ReadOnlySpan<char> topic)
    {
        if (!HasWildcards)
        {
            return topic.SequenceEqual(Text);
        }

        var rest = topic;
        for (var i = 0; i < _tokens.Length; i++)
        {
            var p = _tokens[i];
            if (p == ">")
            {
                return !rest.IsEmpty;
            }

            if (rest.IsEmpty)
            {
                return false;
            }

            var dot = rest.IndexOf('.');
            var token = dot < 0 ? rest : rest[..dot];
            if (p != "*" && !token.SequenceEqual(p))
            {
                return false;
            }

            rest = dot < 0 ? [] : rest[(dot + 1)..];
            if (dot >= 0 && rest.IsEmpty)
            {
                return false;
            }
        }

        return rest.IsEmpty;
    }

    /// <inheritdoc />
    public bool Equals(TopicPattern? other) => other is not null && other.Text == Text;

    /// <inheritdoc />
    public override bool Equals(object? obj) => Equals(obj as TopicPattern);

    /// <inheritdoc />
    public override int GetHashCode() => Text.GetHashCode(StringComparison.Ordinal);

    /// <inheritdoc />
    public override string ToString() => Text;
}
