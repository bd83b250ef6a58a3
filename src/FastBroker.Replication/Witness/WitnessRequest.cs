namespace FastBroker.Replication;

/// <summary>One parsed request; <see cref="NodeId"/> is null for STATUS.</summary>
internal readonly record struct WitnessRequest(WitnessRequestKind Kind, string? NodeId, long Epoch, int TtlMs);
