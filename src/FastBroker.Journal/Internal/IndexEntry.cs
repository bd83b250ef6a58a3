namespace FastBroker.Journal.Internal;

/// <summary>One sparse index entry: a record's offset relative to the segment base, its byte position and timestamp.</summary>
internal readonly record struct IndexEntry(int RelativeOffset, int Position, long Timestamp);
