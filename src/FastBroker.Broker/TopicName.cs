namespace FastBroker;

/// <summary>
/// Topic naming rules: dot-separated tokens of ASCII letters, digits, '_' and '-', at most
/// <see cref="MaxLength"/> characters, no empty token. Wildcards ('*', '&gt;') belong to patterns, not names.
/// </summary>
public static class TopicName
{
    /// <summary>
    /// Longest allowed name: 249 keeps file names well under 255. A work-queue group's default dead-letter topic,
    /// <c>&lt;name&gt;.dlq</c>, needs a name of at most 245 (a longer one needs <see cref="GroupOptions.DeadLetterTopic"/>).
    /// </summary>
    public const int MaxLength = 249;

    /// <summary>
    /// Longest durable subscription or work-queue group name: 240. Its state file is <c>&lt;name&gt;.pos</c> or
    /// <c>&lt;name&gt;.state</c>, written first as <c>&lt;name&gt;.state.creating</c> (15 more characters), and a file name
    /// has at most 255 bytes.
    /// </summary>
    public const int MaxStateNameLength = 240;

    /// <summary>True when <paramref name="name"/> is a valid concrete topic name.</summary>
    public static bool IsValid(ReadOnlySpan<char> name) => Validate(name) is null;

    /// <summary>Throws <see cref="BrokerException"/> (<see cref="BrokerErrorCode.InvalidName"/>) with the reason if invalid.</summary>
    public static void EnsureValid(string? name, string what = "topic") => EnsureValid(name, what, MaxLength);

    /// <summary>As <see cref="EnsureValid(string?, string)"/>, with at most <paramref name="maxLength"/> characters.</summary>
    internal static void EnsureValid(string? name, string what, int maxLength)
    {
        if (name is null)
        {
            throw new BrokerException(BrokerErrorCode.InvalidName, $"{what} name is missing");
        }

        if (name.Length > maxLength && name.Length <= MaxLength)
        {
            throw new BrokerException(BrokerErrorCode.InvalidName, $"invalid {what} name '{Printable(name)}': longer than {maxLength} characters (its state file's name must fit in 255 bytes)");
        }

        if (Validate(name) is { } reason)
        {
            throw new BrokerException(BrokerErrorCode.InvalidName, $"invalid {what} name '{Printable(name)}': {reason}");
        }
    }

    /// <summary>The reason <paramref name="name"/> is invalid, or null when it is valid.</summary>
    public static string? Validate(ReadOnlySpan<char> name)
    {
        if (name.IsEmpty)
        {
            return "empty";
        }

        if (name.Length > MaxLength)
        {
            return $"longer than {MaxLength} characters";
        }

        var tokenLength = 0;
        foreach (var c in name)
        {
            if (c == '.')
            {
                if (tokenLength == 0)
                {
                    return "empty token (leading, trailing or doubled '.')";
                }

                tokenLength = 0;
                continue;
            }

            if (!IsNameChar(c))
            {
                return c is '*' or '>' ? "wildcards are only allowed in subscription patterns" : $"character '{Printable(c.ToString())}' is not allowed (letters, digits, '_', '-', '.')";
            }

            tokenLength++;
        }

        return tokenLength == 0 ? "empty token (leading, trailing or doubled '.')" : null;
    }

    internal static bool IsNameChar(char c) => c is (>= 'a' and <= 'z') or (>= 'A' and <= 'Z') or (>= '0' and <= '9') or '_' or '-';

    internal static string Printable(string s)
    {
        var shown = s.Length > 64 ? s[..64] + "…" : s;
        return string.Create(shown.Length, shown, static (dst, src) =>
        {
            for (var i = 0; i < src.Length; i++)
            {
                dst[i] = char.IsControl(src[i]) ? '?' : src[i];
            }
        });
    }
}
