namespace FastBroker.Journal.Internal;

/// <summary>
/// One sparse index entry: a record's offset relative to the segment base, its byte position, and the newest timestamp of
/// the segment's records up to and including it (<see cref="SparseIndex"/>).
/// </summary>
internal readonly record struct IndexEntry(int RelativeOffset, int Position, long Timestamp);
