namespace FastBroker.Replication;

/// <summary>What a witness answered (or that it could not be asked).</summary>
public enum LeaseResultKind
{
    /// <summary>The lease is the caller's for <see cref="LeaseResult.Ttl"/> at <see cref="LeaseResult.Epoch"/>.</summary>
    Granted,

    /// <summary>
    /// Another node holds the lease: <see cref="LeaseResult.Holder"/> at <see cref="LeaseResult.Epoch"/>, for at least
    /// <see cref="LeaseResult.Remaining"/> more.
    /// </summary>
    Denied,

    /// <summary>The witness could not be reached in time (connect, send or receive failed or timed out).</summary>
    Unreachable,

    /// <summary>The witness refused the request (<see cref="LeaseResult.Message"/>) or answered something unexpected.</summary>
    Error,

    /// <summary>The answer to a release: the caller no longer holds the lease (or never did).</summary>
    Released,

    /// <summary>
    /// The answer to a status query: <see cref="LeaseResult.Holder"/> (null if none) at <see cref="LeaseResult.Epoch"/>,
    /// <see cref="LeaseResult.Remaining"/> of its lease left.
    /// </summary>
    Status,

    /// <summary>
    /// The answer to a standby report: the witness recorded <see cref="LeaseResult.StandbyBehind"/> for the caller's
    /// lease (durably, before answering).
    /// </summary>
    StandbyRecorded,
}
