namespace FastBroker.Replication;

/// <summary>
/// One parsed request; <see cref="NodeId"/> is null for STATUS. <see cref="Force"/>: ACQUIRE even from a standby the
/// holder reported behind. <see cref="Behind"/>: what STANDBY reports.
/// </summary>
internal readonly record struct WitnessRequest(WitnessRequestKind Kind, string? NodeId, long Epoch, int TtlMs, bool Force = false, bool Behind = false);
