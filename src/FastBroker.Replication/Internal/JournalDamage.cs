namespace FastBroker.Replication.Internal;

/// <summary>A damaged record of a primary's journal that the standby cannot be sent (<see cref="PrimaryReplicator.Damage"/>).</summary>
internal sealed record JournalDamage(string Topic, long Offset, string Segment, long Position, string Reason);
