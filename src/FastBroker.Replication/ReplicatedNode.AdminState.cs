using FastBroker.Engine;
using FastBroker.Replication.Internal;
using FastBroker.Server;

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
    /// <c>/status</c> takes its sections from the same read too: the primary's replicator with the standby attached and
    /// its topics, replication gate, lease and server (the <c>standby</c> section, <c>clientEndpoint</c>), and the
    /// standby's copy with its link and topics (the <c>replica</c> section), so a section never belongs to a role the
    /// document does not state.
    /// </summary>
    private readonly record struct AdminState(
        NodeRole Role,
        bool Stopping,
        long NewerEpochSeen,
        string? NewerEpochFrom,
        string? FenceReason,
        LeaseKeeper? Lease,
        bool LeaseValid,
        BrokerServer? Server,
        long BecomingPrimary,
        bool PromotionTakenUp,
        string RoleWhy,
        bool DefersToPeer,
        bool PeerDiverged,
        long Epoch,
        long RoleSince,
        ReplicaView? Replica,
        PrimaryView? Primary,
        ReplicationGate? Gate)
    {
        /// <summary>A primary holding a witness lease (valid or not).</summary>
        public bool HasLease => Lease is not null;

        /// <summary>The client server is up.</summary>
        public bool Serving => Server is not null;

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

    /// <summary>
    /// The standby's copy as read with an <see cref="AdminState"/>: its link, and for <c>/status</c> its topics (a copy
    /// closed after the read, its node promoted, still lists them). Its counters are read from <see cref="Copy"/> as
    /// written.
    /// </summary>
    private readonly record struct ReplicaView(
        StandbyReplica Copy,
        bool Connected,
        string? PrimaryId,
        TimeSpan SinceLastHeard,
        long? LagRecords,
        (string Topic, long First, long Next, long Durable)[] Positions,
        (string Topic, long? PrimaryHead, long Lag)[] PrimaryHeads);

    /// <summary>
    /// The primary's replicator as read with an <see cref="AdminState"/>: the standby attached then, whether the
    /// replication gate counts it, and for <c>/status</c> its topics. <c>Confirming</c>: a standby is attached and the
    /// gate counts it (<see cref="ReplicationGate.StandbyAttached"/>), so standby-mode publishes wait for it rather than
    /// degrade to local or wait for a standby to come; false while the link is accepted but the welcome not yet sent.
    /// Its counters are read from <see cref="Replicator"/> and <see cref="Link"/> as written.
    /// </summary>
    private readonly record struct PrimaryView(
        PrimaryReplicator Replicator,
        StandbyLink? Link,
        bool Confirming,
        (string Topic, long Head, long Received, long Durable)[] Positions);

    /// <param name="withTopics">Also the standby's topics (<c>/status</c>).</param>
    private AdminState ReadAdminState(bool withTopics = false)
    {
        var lease = _lease;
        var replica = Volatile.Read(ref _replica);
        return new AdminState(
            _role,
            _stop.IsCancellationRequested,
            Interlocked.Read(ref _newerEpochSeen),
            Volatile.Read(ref _newerEpochFrom),
            _fenceReason,
            lease,
            lease?.IsValid ?? false,
            Server,
            Interlocked.Read(ref _becomingPrimary),
            Volatile.Read(ref _promotion) is { IsTakenUp: true },
            _roleWhy,
            _defersToPeer,
            Volatile.Read(ref _peerDivergedSince) != 0,
            _state.Epoch,
            _roleSince,
            replica is null ? null : View(replica, withTopics),
            _replicator is { } replicator ? View(replicator, _gate, withTopics) : null,
            _gate);
    }

    // Confirming only with a link read: never confirming without attached.
    private static PrimaryView View(PrimaryReplicator replicator, ReplicationGate? gate, bool withTopics) =>
        replicator.Link is { } link
            ? new(replicator, link, gate is { StandbyAttached: true }, withTopics ? [.. link.Positions] : [])
            : new(replicator, null, false, []);

    private static ReplicaView View(StandbyReplica replica, bool withTopics) => new(
        replica,
        replica.Connected,
        replica.PrimaryId,
        replica.SinceLastHeard,
        replica.LagRecords,
        withTopics ? [.. replica.Positions] : [],
        withTopics ? [.. replica.PrimaryHeads] : []);
}
