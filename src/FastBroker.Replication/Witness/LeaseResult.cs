namespace FastBroker.Replication;

/// <summary>The outcome of one <see cref="WitnessClient"/> call. Which fields are meaningful depends on <see cref="Kind"/>.</summary>
/// <param name="Kind">What happened.</param>
/// <param name="Epoch">Granted: the epoch the caller now holds the lease at. Denied and Status: the holder's epoch.</param>
/// <param name="Holder">Denied: the node holding the lease. Status: the holder, or null if nobody ever held it.</param>
/// <param name="Ttl">Granted: the lease length granted (may be shorter than asked, see <see cref="WitnessOptions.MaxTtl"/>).</param>
/// <param name="Remaining">
/// Denied: how long before the lease can be granted to another node (safety margin included). Status: how long the
/// holder's lease still runs (zero once expired).
/// </param>
/// <param name="Message">Unreachable and Error: a readable reason.</param>
public readonly record struct LeaseResult(LeaseResultKind Kind, long Epoch, string? Holder, TimeSpan Ttl, TimeSpan Remaining, string? Message)
{
    /// <summary>
    /// Granted, Denied, Status and StandbyRecorded: the holder reported that its standby lacks publishes it confirmed
    /// (it degraded them to local while no standby was attached), so the witness grants the lease to no other node
    /// until the holder reports the standby caught up, unless asked with <c>force</c>.
    /// </summary>
    public bool StandbyBehind { get; init; }

    /// <summary>
    /// An <see cref="LeaseResultKind.Error"/> the <see cref="WitnessClient"/> has already told its log (an answer not in
    /// the protocol): a caller that logs the outcome names it without repeating <see cref="Message"/>, so each bad
    /// answer is one line.
    /// </summary>
    internal bool Logged { get; init; }

    /// <summary>What a log line says of an outcome it names after the witness client's own line.</summary>
    internal const string LoggedAnswer = "the witness's answer, in the node's log, is not one of its protocol";

    /// <summary>True for <see cref="LeaseResultKind.Granted"/>.</summary>
    public bool IsGranted => Kind == LeaseResultKind.Granted;

    internal static LeaseResult Failed(LeaseResultKind kind, string message) => new(kind, 0, null, TimeSpan.Zero, TimeSpan.Zero, message);

    /// <summary>A one-line description for logs, e.g. <c>Granted epoch 3 ttl 1000 ms</c>.</summary>
    public override string ToString() => Kind switch
    {
        LeaseResultKind.Granted => $"Granted epoch {Epoch} ttl {Ttl.TotalMilliseconds:0} ms{BehindSuffix}",
        LeaseResultKind.Denied when StandbyBehind => $"Denied: held by {Holder} at epoch {Epoch}, whose standby is behind (only {Holder} or a forced promotion may take it)",
        LeaseResultKind.Denied => $"Denied: held by {Holder} at epoch {Epoch} for {Remaining.TotalMilliseconds:0} ms more",
        LeaseResultKind.Status => $"Status: holder {Holder ?? "-"} epoch {Epoch} remaining {Remaining.TotalMilliseconds:0} ms{BehindSuffix}",
        LeaseResultKind.Released => "Released",
        LeaseResultKind.StandbyRecorded => StandbyBehind ? "Recorded: standby behind" : "Recorded: standby in sync",
        _ => $"{Kind}: {Message}",
    };

    /// <summary>
    /// This outcome for a log line: <see cref="ToString"/>, or, for an error already <see cref="Logged"/>, only that the
    /// answer was logged above, so each bad answer is one line.
    /// </summary>
    internal string ForLog() => Logged ? LoggedAnswer : ToString();

    private string BehindSuffix => StandbyBehind ? "; standby behind" : "";
}
