namespace FastBroker.Journal.Internal;

/// <summary>Outcome of checking one record.</summary>
internal enum RecordStatus
{
    Ok,
    End,
    BadLength,
    BadOffset,
    BadChecksum,
}
