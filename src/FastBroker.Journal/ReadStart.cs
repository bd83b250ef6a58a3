namespace FastBroker.Journal;

/// <summary>Where a new <see cref="JournalReader"/> starts.</summary>
public readonly record struct ReadStart
{
    private ReadStart(ReadStartKind kind, long value)
    {
        Kind = kind;
        Value = value;
    }

    /// <summary>How <see cref="Value"/> is interpreted.</summary>
    public ReadStartKind Kind { get; }

    /// <summary>The offset or Unix-millisecond timestamp.</summary>
    public long Value { get; }

    /// <summary>The oldest retained record.</summary>
    public static ReadStart Beginning => new(ReadStartKind.Offset, 0);

    /// <summary>After the last durable record at open time: only new records are read.</summary>
    public static ReadStart End => new(ReadStartKind.End, 0);

    /// <summary>
    /// The record at <paramref name="offset"/>. Below the oldest retained record the reader starts at the
    /// oldest; beyond the durable end it starts at the durable end (<see cref="JournalReader.NextOffset"/> says).
    /// </summary>
    public static ReadStart FromOffset(long offset) => new(ReadStartKind.Offset, offset);

    /// <summary>
    /// The first record, in log order, with a timestamp at or after <paramref name="unixMilliseconds"/> (the durable end
    /// when none is); the reader reads on from there, records stamped earlier included: appends never stamp a record
    /// earlier than the one before it, but records a standby copied keep the primary's stamps, which may be.
    /// </summary>
    public static ReadStart FromTimestamp(long unixMilliseconds) => new(ReadStartKind.Timestamp, unixMilliseconds);

    /// <summary>
    /// The first record, in log order, with a timestamp at or after <paramref name="time"/>, as
    /// <see cref="FromTimestamp"/>. Timestamps are whole Unix milliseconds, so
    /// a time between two is rounded up (a record stamped 10 ms is before 10.5 ms), as the broker's
    /// <c>StartPosition.AtTime</c> and the server's SUBSCRIBE round it.
    /// </summary>
    public static ReadStart FromTime(DateTimeOffset time) => FromTimestamp(CeilingMilliseconds(time));

    /// <summary><paramref name="time"/> in Unix milliseconds, rounded up to the next whole one.</summary>
    public static long CeilingMilliseconds(DateTimeOffset time) =>
        time.ToUnixTimeMilliseconds() + (time.UtcTicks % TimeSpan.TicksPerMillisecond == 0 ? 0 : 1);
}
