namespace FastBroker.Journal;

/// <summary>How a <see cref="ReadStart"/> is expressed.</summary>
public enum ReadStartKind
{
    /// <summary>From an offset.</summary>
    Offset,

    /// <summary>From a timestamp: the first record in log order stamped at or after it (a binary search of the segments by their running newest timestamp, then the sparse index).</summary>
    Timestamp,

    /// <summary>From the durable end.</summary>
    End,
}
