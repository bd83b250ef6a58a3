namespace FastBroker.Replication.Internal;

/// <summary>
/// Tests: the replication thread (or the journaler's stage of it) that calls a pass hook
/// (<see cref="PrimaryReplicator.ThreadPassed"/>, <see cref="StandbyReplica.ThreadPassed"/>) on itself, once per pass of
/// its loop: a test reads per-thread counters there (<see cref="GC.GetAllocatedBytesForCurrentThread"/>).
/// </summary>
internal enum ReplicationThread
{
    /// <summary>The primary's sender thread, after each pass (<c>StandbyLink.Pass</c>).</summary>
    Sender,

    /// <summary>The primary's ack reader thread, after each read of the standby's frames.</summary>
    AckReader,

    /// <summary>The primary's journaler, after each batch it shipped itself (<c>StandbyLink.TryShipNow</c>).</summary>
    JournalerShip,

    /// <summary>The primary's journaler, after each poll that read the standby's frames (<c>StandbyLink.PollAcks</c>).</summary>
    JournalerPoll,

    /// <summary>The standby's receive thread, after each received ACK it sent and each heartbeat it answered.</summary>
    StandbyReceive,

    /// <summary>The standby's durable thread, at each wake-up.</summary>
    StandbyDurable,
}
