using FastBroker.Replication.Internal;

namespace FastBroker.Replication;

// The one read of the node's state each admin answer is made from.
public sealed partial class ReplicatedNode
{
    /// <summary>
    /// What one admin answer (<c>/primary</c>, <c>/standby</c>, <c>/health</c>, <c>/status</c>) says about the node, read
    /// once (<see cref="ReadAdminState"/>): the answer's HTTP code, status, reason, role and epoch all come from these
    /// values, so they agree with each other even when the node changes role or state while the answer is made (it
    /// then describes the node as it was when read). Before, a route decided whether the node served from one read and
    /// took the status it printed from another: a standby promoted in between answered /primary 503 with status ok.
    /// </summary>
    private readonly record struct AdminState(
        NodeRole Role,
        bool Stopping,
        long NewerEpochSeen,
        string? NewerEpochFrom,
        string? FenceReason,
        bool HasLease,
        bool LeaseValid,
        bool Serving,
        long BecomingPrimary,
        bool PromotionTakenUp,
        string RoleWhy,
        bool DefersToPeer,
        long Epoch,
        long RoleSince,
        ReplicaView? Replica)
    {
        /// <summary>A primary that steps down: a newer epoch seen, fenced (Fence closes the clients), or its lease lost.</summary>
        public bool SteppingDown => NewerEpochSeen >= 0 || FenceReason is not null || (HasLease && !LeaseValid);

        /// <summary>The node's <c>status</c> (<see cref="StatusOf"/>).</summary>
        public string Status => StatusOf(Role, Stopping, SteppingDown, Serving, BecomingPrimary > 0, PromotionTakenUp);

        /// <summary>
        /// The one node to send clients to: primary, not stopping and not stepping down, its server up: status <c>ok</c>.
        /// A stopping primary's server may drain its clients for a while yet: no new ones are sent to it.
        /// </summary>
        public bool ServesAsPrimary => Status == "ok";
    }

    /// <summary>The standby's link as read with an <see cref="AdminState"/>.</summary>
    private readonly record struct ReplicaView(bool Connected, string? PrimaryId, TimeSpan SinceLastHeard, long? LagRecords);

    private AdminState ReadAdminState()
    {
        var lease = _lease;
        var replica = Volatile.Read(ref _replica);
        return new AdminState(
            _role,
            _stop.IsCancellationRequested,
            Interlocked.Read(ref _newerEpochSeen),
            Volatile.Read(ref _newerEpochFrom),
            _fenceReason,
            lease is not null,
            lease?.IsValid ?? false,
            Server is not null,
            Interlocked.Read(ref _becomingPrimary),
            Volatile.Read(ref _promotion) is { IsTakenUp: true },
            _roleWhy,
            _defersToPeer,
            _state.Epoch,
            _roleSince,
            replica is null ? null : View(replica));
    }

    private static ReplicaView View(StandbyReplica replica) => new(replica.Connected, replica.PrimaryId, replica.SinceLastHeard, replica.LagRecords);
}
