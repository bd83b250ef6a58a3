using System.Security.Cryptography;
using System.Text;

namespace FastBroker.Server.Internal;

/// <summary>What one authenticated connection may publish to and read from (from its <see cref="AccessToken"/>).</summary>
internal sealed class AccessPolicy
{
    private readonly TopicPattern[]? _publish;
    private readonly string[][]? _subscribe;

    private AccessPolicy(AccessToken? token)
    {
        _publish = token?.PublishPatterns is { } p ? [.. p.Select(TopicPattern.Parse)] : null;
        _subscribe = token?.SubscribePatterns is { } s ? [.. s.Select(x => x.Split('.'))] : null;
        Scope = token is null ? null : TenantScope.For(token);
    }

    /// <summary>The token's scope of producer ids and names; null without tokens (the client's own ids and names).</summary>
    public TenantScope? Scope { get; }

    /// <summary>No token configured: everything is allowed.</summary>
    public static AccessPolicy AllowAll { get; } = new(null);

    /// <summary>True when any topic may be published to (no per-message check needed).</summary>
    public bool PublishUnrestricted => _publish is null;

    /// <summary>Builds the policies of the configured tokens, index for index.</summary>
    public static (byte[] Secret, AccessPolicy Policy)[] Build(IReadOnlyList<AccessToken> tokens) =>
        [.. tokens.Select(t => (Encoding.UTF8.GetBytes(t.Token), new AccessPolicy(t)))];

    /// <summary>
    /// Finds the token equal to <paramref name="presented"/>, comparing against every configured token in constant
    /// time per token (no early exit on the first match, so timing does not tell which one matched).
    /// </summary>
    public static AccessPolicy? Authenticate((byte[] Secret, AccessPolicy Policy)[] tokens, ReadOnlySpan<byte> presented)
    {
        AccessPolicy? found = null;
        foreach (var (secret, policy) in tokens)
        {
            if (CryptographicOperations.FixedTimeEquals(secret, presented) && found is null)
            {
                found = policy;
            }
        }

        return found;
    }

    /// <summary>
    /// True when this connection may publish to <paramref name="topicUtf8"/>. A name that is not a valid topic passes
    /// (the broker answers it with <c>InvalidName</c>, the more useful error). Allocation-free.
    /// </summary>
    public bool CanPublish(ReadOnlySpan<byte> topicUtf8)
    {
        if (_publish is null)
        {
            return true;
        }

        Span<char> chars = stackalloc char[256];
        var n = Encoding.UTF8.GetChars(topicUtf8, chars);
        var topic = chars[..n];
        if (!TopicName.IsValid(topic))
        {
            return true;
        }

        foreach (var p in _publish)
        {
            if (p.Matches(topic))
            {
                return true;
            }
        }

        return false;
    }

    /// <summary>True when every topic <paramref name="pattern"/> (a valid pattern or topic name) can match is readable.</summary>
    public bool CanSubscribe(string pattern)
    {
        if (_subscribe is null)
        {
            return true;
        }

        var tokens = pattern.Split('.');
        foreach (var allowed in _subscribe)
        {
            if (Covers(allowed, tokens))
            {
                return true;
            }
        }

        return false;
    }

    /// <summary>True when every topic matched by <paramref name="pattern"/> is matched by <paramref name="allowed"/>.</summary>
    internal static bool Covers(string[] allowed, string[] pattern)
    {
        for (var i = 0; i < allowed.Length; i++)
        {
            var a = allowed[i];
            if (a == ">")
            {
                // '>' matches one or more tokens: whatever the pattern has from here on (at least one token) fits.
                return i < pattern.Length;
            }

            if (i >= pattern.Length)
            {
                return false;
            }

            var p = pattern[i];
            if (p == ">")
            {
                return false;
            }

            if (a != "*" && a != p)
            {
                return false;
            }
        }

        return allowed.Length == pattern.Length;
    }
}
