using System.Globalization;

namespace FastBroker;

/// <summary>How an embedded broker is set up. Immutable; start from <see cref="Default"/> and change what you need with <c>with</c>.</summary>
public sealed record BrokerOptions
{
    /// <summary>Data in <c>./data</c>, topics created on first use, the hybrid (non-spinning) wait strategy.</summary>
    public static BrokerOptions Default { get; } = new();

    /// <summary>
    /// Where journals, topic metadata, durable positions and group state live. One broker at a time: an open broker
    /// holds an exclusive lock on <c>broker.lock</c> in it, and a second open is refused (see <see cref="Broker.OpenAsync"/>).
    /// </summary>
    public string DataDirectory { get; init; } = "data";

    /// <summary>Create a topic (with <see cref="DefaultTopicOptions"/>) when it is first published to or subscribed to.</summary>
    public bool AutoCreateTopics { get; init; } = true;

    /// <summary>Settings of auto-created topics.</summary>
    public TopicOptions DefaultTopicOptions { get; init; } = TopicOptions.Default;

    /// <summary>
    /// Topics the broker declares each time it opens (a failover pair's node: each time it opens as the primary), by
    /// name: one that does not exist is created with its settings before the open returns, so clients never find it
    /// missing (with <see cref="AutoCreateTopics"/> off) or auto-created with <see cref="DefaultTopicOptions"/>. One that
    /// exists keeps the settings it was created with (they are fixed then, as <see cref="Broker.CreateTopic"/>'s); a
    /// difference is logged to <see cref="Log"/>, not refused, so that a promotion never fails on it.
    /// </summary>
    public IReadOnlyDictionary<string, TopicOptions> Topics { get; init; } = new Dictionary<string, TopicOptions>();

    /// <summary>
    /// Entries in the input ring: a power of two from 2 to <see cref="MaxInputRingSize"/>, with
    /// <see cref="InputRingSize"/> × <see cref="InputEntryBytes"/> at most <see cref="MaxInputRingBytes"/>. Publishers
    /// get back-pressure when it is full.
    /// </summary>
    public int InputRingSize { get; init; } = 1 << 14;

    /// <summary>
    /// The largest <see cref="InputRingSize"/>: 2^24 entries, as a transient topic's <see cref="TopicOptions.MaxTransientCapacity"/>.
    /// Every entry is an object of its own allocated when the broker opens, its <see cref="InputEntryBytes"/> array
    /// besides, so the entry count costs memory even with small entries; a ring this deep already queues seconds of
    /// publishes at millions a second, and back-pressure, not a deeper ring, is what holds a faster publisher.
    /// </summary>
    public const int MaxInputRingSize = 1 << 24;

    /// <summary>
    /// The most the input ring may allocate for its entries' room, <see cref="InputRingSize"/> ×
    /// <see cref="InputEntryBytes"/>: 4 GiB (2^32 bytes), so 2^16 entries of the largest
    /// (<see cref="MaxInputEntryBytes"/>, 64 KiB) or 2^23 of the default 512 bytes. The defaults take 8 MiB.
    /// </summary>
    public const long MaxInputRingBytes = 1L << 32;

    /// <summary>
    /// Pre-allocated bytes per input-ring entry, from 64 to <see cref="MaxInputEntryBytes"/>; bigger messages grow their
    /// entry once (to their size). Every one of the <see cref="InputRingSize"/> entries allocates it when the broker
    /// opens, and every slot of a transient topic <c>min(MaxMessageBytes, InputEntryBytes)</c> when the topic is created.
    /// </summary>
    public int InputEntryBytes { get; init; } = 512;

    /// <summary>
    /// The largest <see cref="InputEntryBytes"/>: 64 KiB. The input ring allocates every entry when the broker opens, so
    /// the ring takes <see cref="InputRingSize"/> × <see cref="InputEntryBytes"/>: 8 MiB with the defaults (2^14 entries
    /// of 512 bytes), 1 GiB with 64 KiB entries; 2^31 − 1 bytes an entry would be 32 TiB. An entry is room made ahead,
    /// not a limit: a message larger than its entry grows it once, so a larger entry only costs memory.
    /// </summary>
    public const int MaxInputEntryBytes = 1 << 16;

    /// <summary>
    /// Idempotent producers: how many of each producer's most recent sequences the broker remembers (a power of two).
    /// A retry of a message older than that is refused instead of risking a duplicate; keep clients' in-flight limit
    /// below it (the .NET client's default is 8192).
    /// </summary>
    public int ProducerWindow { get; init; } = 1 << 16;

    /// <summary>
    /// At start, how many of each persistent topic's newest records are scanned to rebuild the producer window (the
    /// producers' checkpoint, <c>producers.state</c>, vouches for the older ones). 0 or at least
    /// <see cref="MinProducerRecoveryRecords"/>: below that, records stored after the checkpoint's last capture may be
    /// out of the scan after a crash, and a retry of one would be stored again. 0 = no recovery: after a restart neither
    /// the scan nor the checkpoint's producers are read and every producer counts as new (the producer epochs, of
    /// <c>producers.epochs</c> and the checkpoint, are read all the same: a replaced instance stays fenced).
    /// </summary>
    public int ProducerRecoveryRecords { get; init; } = 1 << 16;

    /// <summary>
    /// The smallest nonzero <see cref="ProducerRecoveryRecords"/>: 32,768, four times the 8,192 records the journaler
    /// writes between two captures of the producers' checkpoint.
    /// </summary>
    public const int MinProducerRecoveryRecords = 4 * Engine.ProducerCheckpoint.Interval;

    /// <summary>
    /// Tests only: lets <see cref="ProducerRecoveryRecords"/> go below <see cref="MinProducerRecoveryRecords"/>, so a
    /// test can push a producer out of the rescan with a few records to exercise the checkpoint.
    /// </summary>
    internal bool AllowSmallProducerRescan { get; init; }

    /// <summary>
    /// Tests only: the most records of one topic the open's producer rescan reads (<see cref="Engine.ProducerCheckpoint.RescanLimit"/>,
    /// or <see cref="ProducerRecoveryRecords"/> if larger), so a test can pass it with a few hundred records.
    /// </summary>
    internal int ProducerRescanLimit { get; init; } = Engine.ProducerCheckpoint.RescanLimit;

    /// <summary>
    /// Tests only: the clock the journaler stamps messages with (read once per ring batch), so that a test can step it
    /// back as a wall clock may step; also the idempotent producers' clock: the epochs <see cref="Broker.InitProducer"/>
    /// gives and the ids' last use, the ages a restart gives them, and the interval of the <c>producers.epochs</c>
    /// refresh, so that a test can age them without waiting.
    /// </summary>
    internal TimeProvider StampClock { get; init; } = TimeProvider.System;

    /// <summary>
    /// Tests only: the clock of the broker's rate-limited log lines (<see cref="Engine.LogRateLimit"/>), so that a test
    /// can count them per interval without waiting.
    /// </summary>
    internal TimeProvider LogClock { get; init; } = TimeProvider.System;

    /// <summary>
    /// Tests only: told each step on disk of a topic's creation and of the removal of a leftover topic directory,
    /// from the open on (<see cref="Engine.TopicRegistry.FileStep"/>), so that a test can make one fail.
    /// </summary>
    internal Action<string>? TopicFileStep { get; init; }

    /// <summary>
    /// Idempotent producers: after this long with nothing stored for it, a producer's window shrinks to its newest
    /// sequence (a producer that wrote a whole window holds 1.5 MB, a shrunk one under 400 bytes). A retry of that
    /// sequence is still confirmed as a duplicate and its next sequence is still new, but a retry of any older one is
    /// then refused as too old instead of being confirmed. Keep it above the longest a client keeps retrying after a
    /// disconnect (the .NET client's <c>ReconnectTimeout</c>: 60 s). <see cref="Timeout.InfiniteTimeSpan"/> = never.
    /// </summary>
    public TimeSpan ProducerIdleTimeout { get; init; } = TimeSpan.FromMinutes(15);

    /// <summary>
    /// Idempotent producers: after this long with nothing stored for it, a producer is forgotten, so that producer ids
    /// that never come back (the .NET client draws a new one per instance) do not pile up in memory and in
    /// <c>producers.state</c>. A forgotten id counts as new: <see cref="Broker.NextProducerSequence"/> answers 0 and
    /// its records this old no longer rebuild it at a restart. Its newest epoch stays, for <see cref="ProducerEpochRetention"/>.
    /// At least <see cref="ProducerIdleTimeout"/>;
    /// <see cref="Timeout.InfiniteTimeSpan"/> = never.
    /// </summary>
    public TimeSpan ProducerExpiry { get; init; } = TimeSpan.FromDays(1);

    /// <summary>
    /// Idempotent producers: how long a producer id's newest epoch (<see cref="Broker.InitProducer"/>) is kept after the
    /// id was last in use (its newest write or INIT_PRODUCER), also once <see cref="ProducerExpiry"/> forgot its window
    /// and across restarts (<c>producers.epochs</c>), so that a replaced instance coming back later is still refused
    /// (<see cref="BrokerErrorCode.ProducerFenced"/>); after it the id's epochs are forgotten (16 bytes each until then).
    /// Never less than <see cref="ProducerExpiry"/>: a shorter value counts as the expiry. At least 1 ms;
    /// <see cref="Timeout.InfiniteTimeSpan"/> = never.
    /// </summary>
    public TimeSpan ProducerEpochRetention { get; init; } = TimeSpan.FromDays(7);

    /// <summary>
    /// On open, re-check the CRC32C of every record in each journal's sealed (complete) segments as well as its tail
    /// (true, the default), or trust their seals and index files and scan only the unsealed tails (false). False makes
    /// opening cost a function of the tails, not of the journals' size; damage in a sealed segment is then found when a
    /// record is first read (the first journal reader to reach each record of a trusted segment checks its CRC32C, once
    /// per process): a subscriber gets the error at the damaged record, never the record (docs/journal-format.md, "What
    /// is checked where"). A promoted standby opens with false: its process verified the same journals when it
    /// opened them as a standby and has been their only writer since (docs/replication.md).
    /// </summary>
    public bool VerifySealedSegmentsOnOpen { get; init; } = true;

    /// <summary>How pipeline threads wait. Keep the default on machines with few cores.</summary>
    public BrokerWaitStrategy WaitStrategy { get; init; } = BrokerWaitStrategy.Hybrid;

    /// <summary>Period of the background tick that expires work-queue visibility timeouts and delayed nacks.</summary>
    public TimeSpan TimerResolution { get; init; } = TimeSpan.FromMilliseconds(5);

    /// <summary>How long <c>Broker.DisposeAsync</c> waits for the pipeline to drain.</summary>
    public TimeSpan ShutdownTimeout { get; init; } = TimeSpan.FromSeconds(10);

    /// <summary>Name of the <see cref="System.Diagnostics.Metrics.Meter"/> the broker's instruments belong to.</summary>
    public string MeterName { get; init; } = "FastBroker";

    /// <summary>
    /// Receives one line per notable event the broker handles on its own, such as a dead letter its dead-letter topic
    /// refuses (retried, or dropped when it can never be stored); null = silent. Called from broker threads: must not
    /// throw or block. What recovery found when the broker opened is in <see cref="Broker.RecoveryReports"/>.
    /// </summary>
    public Action<string>? Log { get; init; }

    /// <summary>Throws <see cref="BrokerException"/> (<see cref="BrokerErrorCode.InvalidArgument"/>) when a value is out of range.</summary>
    public void Validate()
    {
        if (string.IsNullOrWhiteSpace(DataDirectory))
        {
            throw new BrokerException(BrokerErrorCode.InvalidArgument, "DataDirectory is required");
        }

        if (InputRingSize is < 2 or > MaxInputRingSize || (InputRingSize & (InputRingSize - 1)) != 0)
        {
            throw new BrokerException(BrokerErrorCode.InvalidArgument, string.Create(CultureInfo.InvariantCulture, $"InputRingSize ({InputRingSize}) must be a power of two from 2 to {MaxInputRingSize} (2^24): the broker allocates every input-ring entry when it opens"));
        }

        if (InputEntryBytes is < 64 or > MaxInputEntryBytes)
        {
            throw new BrokerException(BrokerErrorCode.InvalidArgument, string.Create(CultureInfo.InvariantCulture, $"InputEntryBytes ({InputEntryBytes}) must be from 64 to {MaxInputEntryBytes} (64 KiB): each of the InputRingSize ({InputRingSize}) input-ring entries allocates it when the broker opens ({(long)InputRingSize * MaxInputEntryBytes >> 20} MiB at 64 KiB), and a larger message grows its entry once anyway"));
        }

        if ((long)InputRingSize * InputEntryBytes > MaxInputRingBytes)
        {
            throw new BrokerException(BrokerErrorCode.InvalidArgument, string.Create(CultureInfo.InvariantCulture, $"InputRingSize × InputEntryBytes ({InputRingSize} × {InputEntryBytes} = {(long)InputRingSize * InputEntryBytes >> 20} MiB) must be at most {MaxInputRingBytes >> 20} MiB (4 GiB): the broker allocates every input-ring entry's room when it opens; use a smaller ring or smaller entries (a larger message grows its entry once anyway)"));
        }

        if (ProducerWindow < 64 || (ProducerWindow & (ProducerWindow - 1)) != 0)
        {
            throw new BrokerException(BrokerErrorCode.InvalidArgument, "ProducerWindow must be a power of two ≥ 64");
        }

        if (ProducerRecoveryRecords < 0 || (ProducerRecoveryRecords > 0 && ProducerRecoveryRecords < MinProducerRecoveryRecords && !AllowSmallProducerRescan))
        {
            throw new BrokerException(
                BrokerErrorCode.InvalidArgument,
                $"ProducerRecoveryRecords ({ProducerRecoveryRecords}) must be 0 (producers are not recovered at a restart) or at least {MinProducerRecoveryRecords} (4 × the {Engine.ProducerCheckpoint.Interval} records between two captures of producers.state)");
        }

        if (ProducerIdleTimeout != Timeout.InfiniteTimeSpan && ProducerIdleTimeout < TimeSpan.FromMilliseconds(1))
        {
            throw new BrokerException(BrokerErrorCode.InvalidArgument, "ProducerIdleTimeout must be at least 1 ms (or infinite)");
        }

        if (ProducerExpiry != Timeout.InfiniteTimeSpan
            && (ProducerExpiry < TimeSpan.FromMilliseconds(1) || (ProducerIdleTimeout != Timeout.InfiniteTimeSpan && ProducerExpiry < ProducerIdleTimeout) || ProducerIdleTimeout == Timeout.InfiniteTimeSpan))
        {
            throw new BrokerException(BrokerErrorCode.InvalidArgument, "ProducerExpiry must be infinite or at least ProducerIdleTimeout (which must then be finite)");
        }

        if (ProducerEpochRetention != Timeout.InfiniteTimeSpan && ProducerEpochRetention < TimeSpan.FromMilliseconds(1))
        {
            throw new BrokerException(BrokerErrorCode.InvalidArgument, "ProducerEpochRetention must be at least 1 ms (or infinite)");
        }

        DefaultTopicOptions.Validate();
        foreach (var (name, topic) in Topics)
        {
            TopicName.EnsureValid(name);
            try
            {
                topic.Validate();
            }
            catch (BrokerException e) when (e.Code == BrokerErrorCode.InvalidArgument)
            {
                throw new BrokerException(BrokerErrorCode.InvalidArgument, $"Topics['{name}']: {e.Message}", e);
            }
        }
    }
}
