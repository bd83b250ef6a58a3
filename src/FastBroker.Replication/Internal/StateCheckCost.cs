namespace FastBroker.Replication.Internal;

/// <summary>
/// What one heartbeat's check of the state files cost the sender thread (tests: <see cref="PrimaryReplicator.StateChecked"/>).
/// </summary>
/// <param name="Stats">Files and directories whose metadata it asked the file system for (a <c>stat</c> each).</param>
/// <param name="Reads">State files it read whole, for any reason.</param>
/// <param name="SweepReads">Of those, the files the rolling pass read (the fallback for changes nothing signalled).</param>
/// <param name="Listings">Directories it listed (an enumeration each, which allocates): <c>subscriptions/</c> for new position files, and the rolling pass's listing of every state file.</param>
internal readonly record struct StateCheckCost(int Stats, int Reads, int SweepReads, int Listings);
