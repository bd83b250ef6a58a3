namespace FastBroker.Replication;

/// <summary>The requests of the witness protocol.</summary>
internal enum WitnessRequestKind
{
    Acquire,
    Release,
    Status,

    /// <summary>The holder reports whether its standby holds everything it confirmed (see <see cref="WitnessClient.SetStandbyAsync"/>).</summary>
    Standby,
}
