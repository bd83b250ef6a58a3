using System.Buffers.Binary;
using System.Security.Cryptography;
using System.Text;

namespace FastBroker.Server.Internal;

/// <summary>
/// What keeps one access token's producer ids, durable names and group names apart from another's
/// (docs/server.md, "Authentication and access control"). Derived from the token's tenant (or its secret), never stored:
/// a restart, a recovery or a promoted standby configured with the same tokens maps every name as before.
/// </summary>
internal sealed class TenantScope
{
    // 20,000 rounds, once per token at server start (a few ms): a producer id or a name prefix, which readers of the
    // topic and the ADMIN queries see, must not be a cheap test of a guessed token.
    private const int SecretRounds = 20_000;
    private static readonly byte[] s_salt = "fastbroker tenant scope v1"u8.ToArray();

    private readonly byte[] _key;

    private TenantScope(byte[] key)
    {
        _key = key;
        Span<byte> mac = stackalloc byte[32];
        HMACSHA256.HashData(_key, "names"u8, mac);
        Prefix = "_t" + Convert.ToHexStringLower(mac[..8]) + ".";
    }

    /// <summary>What a scoped name starts with: <c>_t</c>, 16 hex digits, a dot.</summary>
    public string Prefix { get; }

    /// <summary>The longest name a client of this scope may give: the broker's limit less the prefix.</summary>
    public int MaxNameLength => TopicName.MaxStateNameLength - Prefix.Length;

    /// <summary>The scope of <paramref name="token"/>: its <see cref="AccessToken.Tenant"/> when set, else its secret.</summary>
    public static TenantScope For(AccessToken token) => token.Tenant is { } tenant
        ? new(SHA256.HashData(Encoding.UTF8.GetBytes("fastbroker tenant\0" + tenant)))
        : new(Rfc2898DeriveBytes.Pbkdf2(Encoding.UTF8.GetBytes(token.Token), s_salt, SecretRounds, HashAlgorithmName.SHA256, 32));

    /// <summary>
    /// The broker's producer id for the client's <paramref name="clientId"/> (not 0): a keyed hash, so no client of
    /// another scope can name it, not even with an id it read in an <c>fb-producer</c> header (that maps to yet another).
    /// Allocation-free.
    /// </summary>
    public ulong ProducerId(ulong clientId)
    {
        Span<byte> input = stackalloc byte[9];
        input[0] = (byte)'p';
        BinaryPrimitives.WriteUInt64LittleEndian(input[1..], clientId);
        Span<byte> mac = stackalloc byte[32];
        HMACSHA256.HashData(_key, input, mac);
        var id = BinaryPrimitives.ReadUInt64LittleEndian(mac);
        return id == 0 ? 1 : id;
    }

    /// <summary>
    /// The broker's name for a durable subscription or group the client calls <paramref name="name"/>, or null when
    /// <paramref name="name"/> is not a valid name (the broker then refuses the client's own name, with its reason) or
    /// is too long for the prefix (<paramref name="tooLong"/>).
    /// </summary>
    public string? Name(string name, out bool tooLong)
    {
        tooLong = false;
        if (!TopicName.IsValid(name))
        {
            return null;
        }

        if (name.Length > MaxNameLength)
        {
            tooLong = true;
            return null;
        }

        return Prefix + name;
    }
}
