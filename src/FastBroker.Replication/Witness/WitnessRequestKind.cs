namespace FastBroker.Replication;

/// <summary>The three requests of the witness protocol.</summary>
internal enum WitnessRequestKind
{
    Acquire,
    Release,
    Status,
}
