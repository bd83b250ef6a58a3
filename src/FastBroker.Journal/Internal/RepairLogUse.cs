namespace FastBroker.Journal.Internal;

/// <summary>What reads the repair log: a damaged one's message names what it refuses, or what open does with it.</summary>
internal enum RepairLogUse
{
    /// <summary>Opening the journal, which refuses a damaged log.</summary>
    Open,

    /// <summary><see cref="JournalLog.TruncateFrom(string, JournalOptions, long, string)"/>, which refuses a damaged log.</summary>
    TruncateFrom,

    /// <summary>verify or dump, which refuse nothing: the message says what open and TruncateFrom do.</summary>
    Inspect,
}
