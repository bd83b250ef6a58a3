namespace FastBroker.Replication;

/// <summary>
/// How a <see cref="WitnessServer"/> listens and grants. Immutable; start from <see cref="Default"/> and change what you
/// need with <c>with</c>.
/// </summary>
public sealed record WitnessOptions
{
    /// <summary>The documented default port (the broker uses 7400 and its admin endpoint 7401).</summary>
    public const int DefaultPort = 7402;

    /// <summary>127.0.0.1:7402, <c>./witness-data</c>, 100 ms safety margin, 10 s maximum TTL, 30 s idle timeout.</summary>
    public static WitnessOptions Default { get; } = new();

    /// <summary>
    /// Address to bind: an IPv4 address of four numbers 0 to 255 (<c>0.0.0.0</c> for every interface, deliberately), an
    /// IPv6 address (<c>::</c>, <c>[::1]</c>) or a host name resolved at start, binding its first IPv4 address (else its
    /// first address), as <see cref="ReplicationOptions.Host"/>; a shortened IPv4 form (<c>127.1</c>, <c>0</c> for
    /// 0.0.0.0) is refused.
    /// </summary>
    public string Host { get; init; } = "127.0.0.1";

    /// <summary>TCP port; 0 picks a free one (read it back from <see cref="WitnessServer.EndPoint"/>).</summary>
    public int Port { get; init; } = DefaultPort;

    /// <summary>Where <c>witness.state</c> (holder and epoch) is kept; created if missing.</summary>
    public string DataDirectory { get; init; } = "witness-data";

    /// <summary>
    /// How long after a lease expired it stays reserved for its holder before another node may take it. It covers
    /// the difference in clock rate between the witness and the holder (monotonic clocks drift apart by parts per
    /// million; 100 ms is generous for TTLs up to a minute), so the holder has stopped believing in its lease by the
    /// time anyone else is granted it. 0 to <see cref="MaxSafetyMargin"/> (<c>fastbroker witness --safety-margin-ms</c>).
    /// </summary>
    public TimeSpan SafetyMargin { get; init; } = TimeSpan.FromMilliseconds(100);

    /// <summary>
    /// The longest <see cref="SafetyMargin"/>: 2,147,423,647 ms (about 24.8 days), what is left of the longest remaining
    /// time a DENIED answer carries (<see cref="WitnessProtocol.MaxRemainingMs"/>, int.MaxValue ms) after the longest
    /// lease (<see cref="MaxMaxTtl"/>); a denial states the holder's lease plus the margin, and a client refuses more.
    /// </summary>
    public static TimeSpan MaxSafetyMargin { get; } = TimeSpan.FromMilliseconds(WitnessProtocol.MaxRemainingMs - WitnessProtocol.MaxTtlMs);

    /// <summary>
    /// The longest lease granted (longer requests are granted this TTL, which the GRANTED answer states): 50 ms to 60 s
    /// (<see cref="MinMaxTtl"/>, <see cref="MaxMaxTtl"/>, the TTLs the protocol carries). After a restart the witness
    /// does not know when the persisted holder's last lease ends, so it treats it as valid for this long from the
    /// restart: no lease granted before the restart can outlive that, and no failover happens before it ends.
    /// </summary>
    public TimeSpan MaxTtl { get; init; } = TimeSpan.FromSeconds(10);

    /// <summary>The shortest <see cref="MaxTtl"/>: 50 ms, the shortest lease the protocol carries.</summary>
    public static TimeSpan MinMaxTtl { get; } = TimeSpan.FromMilliseconds(WitnessProtocol.MinTtlMs);

    /// <summary>
    /// The longest <see cref="MaxTtl"/>: 60 s, the longest lease the protocol carries. A longer one would grant nothing
    /// longer, but would keep a restarted witness from granting the lease to another node for that long.
    /// </summary>
    public static TimeSpan MaxMaxTtl { get; } = TimeSpan.FromMilliseconds(WitnessProtocol.MaxTtlMs);

    /// <summary>
    /// How long a connection may stay silent before the witness closes it: above 0, at most <see cref="int.MaxValue"/> ms
    /// (about 24.8 days), the longest timed wait the runtime takes (past it, every connection failed as it was served).
    /// </summary>
    public TimeSpan IdleTimeout { get; init; } = TimeSpan.FromSeconds(30);

    /// <summary>Most concurrent connections; extra ones are closed at accept.</summary>
    public int MaxConnections { get; init; } = 256;

    /// <summary>Receives one line per grant of a new epoch, release, denial (first of a run) and error; null = silent.</summary>
    public Action<string>? Log { get; init; }

    internal void Validate()
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(Host);
        if (!Internal.PeerAddress.TryParseHost(Host, out _, out var hostReason))
        {
            throw new ArgumentException($"Host '{Host}' is not an address to bind: {hostReason}.", nameof(Host));
        }

        ArgumentException.ThrowIfNullOrWhiteSpace(DataDirectory);
        ArgumentOutOfRangeException.ThrowIfLessThan(Port, 0);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(Port, 65535);
        if (SafetyMargin < TimeSpan.Zero || SafetyMargin > MaxSafetyMargin)
        {
            throw new ArgumentOutOfRangeException(
                nameof(SafetyMargin),
                SafetyMargin,
                $"SafetyMargin ({SafetyMargin.TotalMilliseconds:0.###} ms) must be 0 to {MaxSafetyMargin.TotalMilliseconds:0} ms: a denial states the holder's remaining lease plus the margin, which the protocol carries up to {WitnessProtocol.MaxRemainingMs} ms after a lease of up to {WitnessProtocol.MaxTtlMs} ms.");
        }
        if (MaxTtl < MinMaxTtl || MaxTtl > MaxMaxTtl)
        {
            throw new ArgumentOutOfRangeException(
                nameof(MaxTtl),
                MaxTtl,
                $"MaxTtl ({MaxTtl.TotalMilliseconds:0.###} ms) must be {WitnessProtocol.MinTtlMs} to {WitnessProtocol.MaxTtlMs} ms: a lease is granted for at most {WitnessProtocol.MaxTtlMs} ms, and after a restart the witness keeps the lease for its recorded holder for MaxTtl, so a longer one would only hold up every failover that long.");
        }

        ArgumentOutOfRangeException.ThrowIfLessThanOrEqual(IdleTimeout, TimeSpan.Zero);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(IdleTimeout, TimeSpan.FromMilliseconds(int.MaxValue));
        ArgumentOutOfRangeException.ThrowIfLessThan(MaxConnections, 1);
    }
}
