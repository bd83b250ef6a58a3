namespace FastBroker.Journal;

/// <summary>How a <see cref="ReadStart"/> is expressed.</summary>
public enum ReadStartKind
{
    /// <summary>From an offset.</summary>
    Offset,

    /// <summary>From a timestamp (sparse time index, binary search).</summary>
    Timestamp,

    /// <summary>From the durable end.</summary>
    End,
}
