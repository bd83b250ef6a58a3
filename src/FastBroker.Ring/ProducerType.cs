namespace FastBroker.Ring;

/// <summary>How many threads publish to a ring: picks the sequencer.</summary>
public enum ProducerType
{
    /// <summary>Exactly one publishing thread at a time: claims are plain stores, no CAS.</summary>
    Single,

    /// <summary>Any number of publishing threads: claims are atomic adds, publication uses an availability buffer.</summary>
    Multi,
}
