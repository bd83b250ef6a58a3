namespace FastBroker.Journal;

/// <summary>How a journal is laid out and flushed. Immutable; <see cref="Default"/> is a sensible start.</summary>
public sealed record JournalOptions
{
    /// <summary>64 MiB segments, group commit, verify everything on open.</summary>
    public static JournalOptions Default { get; } = new();

    /// <summary>Bytes per segment file, header included (64 KiB … 1 GiB; a multiple of 4096). New segments only.</summary>
    public int SegmentSize { get; init; } = 64 << 20;

    /// <summary>When appended records become durable; see <see cref="DurabilityPolicy"/>.</summary>
    public DurabilityPolicy Durability { get; init; } = DurabilityPolicy.GroupCommit;

    /// <summary>Period of the <see cref="DurabilityPolicy.Interval"/> policy.</summary>
    public TimeSpan FlushInterval { get; init; } = TimeSpan.FromMilliseconds(10);

    /// <summary>
    /// Back-pressure: with a syncing policy, <see cref="JournalLog.TryAppend(ReadOnlySpan{byte}, out long)"/>
    /// returns false while more than this many appended bytes are not yet durable (bounds the work one sync does).
    /// </summary>
    public long MaxUndurableBytes { get; init; } = 64L << 20;

    /// <summary>
    /// One sparse index entry per this many bytes of records (16 KiB: a 64 MiB segment has 4096 entries, 64 KiB
    /// of memory; a seek is a binary search plus a scan of at most 16 KiB).
    /// </summary>
    public int IndexIntervalBytes { get; init; } = 16 << 10;

    /// <summary>Epoch stamped into new segment headers (the replication term of the writer).</summary>
    public long Epoch { get; init; }

    /// <summary>
    /// Offset of the first record when the directory holds no segment yet (ignored otherwise: an existing journal
    /// continues where it ends). A standby whose primary has already deleted old segments by retention starts
    /// its copy at the primary's <see cref="JournalLog.FirstOffset"/>. Default 0.
    /// </summary>
    public long InitialOffset { get; init; }

    /// <summary>
    /// On open, verify every record's CRC in sealed segments too (true), or only scan the unsealed tail and
    /// trust sealed segments' trailers (false: faster opens; damage is then found when read: a checking
    /// <see cref="JournalReader"/>, the default, throws <see cref="JournalCorruptionException"/> at the damaged record).
    /// A verified segment's records are known good to readers, which read them without computing their CRC32C; a trusted
    /// one's are checked by the first reader that reaches each (once per process: the segment's verified watermark
    /// follows it), so false moves the checking of sealed segments from the open to their first read. A segment whose
    /// seal an older version wrote (its last timestamp may understate the newest record) is still scanned, without the
    /// CRC32C, for its timestamps and index (<see cref="RecoveryReport.OlderSealsScanned"/>).
    /// </summary>
    public bool VerifySealedSegmentsOnOpen { get; init; } = true;

    /// <summary>
    /// Instead of refusing to open on corruption in a sealed segment, truncate the journal at the bad record
    /// (dropping every later record and segment) and report it in <see cref="JournalLog.Recovery"/>. What it drops is not
    /// kept: <see cref="DamagedSegments.KeepAside"/> before such an open keeps the files it changes or deletes
    /// (<see cref="DamagedSegments.KeepAsideOnce"/>: once, whatever point a process is killed at).
    /// </summary>
    public bool RepairCorruption { get; init; }

    /// <summary>Delete sealed segments whose newest record is older than this (null: no age limit).</summary>
    public TimeSpan? RetentionMaxAge { get; init; }

    /// <summary>Delete the oldest sealed segments while the journal takes more than this many bytes (null: no limit).</summary>
    public long? RetentionMaxBytes { get; init; }

    /// <summary>
    /// The <see cref="JournalLog.RetentionFloor"/> the journal opens with, in place before its flusher's first retention
    /// pass (which comes about a second after the open). For an owner that can tell its floor only after the open (the
    /// broker reads its work-queue groups' state files once every topic is open): one that holds everything
    /// (<see cref="long.MinValue"/>) until it sets its own, so that no pass runs with no floor meanwhile. Null: none.
    /// </summary>
    public Func<long>? RetentionFloor { get; init; }

    /// <summary>How often the flusher thread applies retention when a limit is set.</summary>
    public TimeSpan RetentionCheckInterval { get; init; } = TimeSpan.FromSeconds(5);

    /// <summary>
    /// Receives one line per notable event the journal handles on its own (a <see cref="JournalLog.RetentionFloor"/>
    /// callback that throws, once per cause); null = silent. Called from the flusher or the caller of a retention pass.
    /// </summary>
    public Action<string>? Log { get; init; }

    /// <summary>
    /// Pre-fault each new segment's pages for writing (<c>madvise(MADV_POPULATE_WRITE)</c>) on the flusher thread
    /// before the writer reaches them, so the writer does not take a page fault per 4 KiB.
    /// </summary>
    public bool PrefaultSegments { get; init; } = true;

    /// <summary>
    /// Test seam: called by a repair after each of its steps (the later files deleted, the cut segment unsealed, its
    /// dropped bytes zeroed), with its repair log durable; a crash host stops there to be killed.
    /// </summary>
    internal Action<Internal.RepairStep>? RepairStepHook { get; init; }

    /// <summary>What <see cref="SegmentSize"/> must be (<see cref="IsValidSegmentSize"/>), for messages naming the setting a caller derives it from.</summary>
    public const string SegmentSizeRule = "a multiple of 4096 from 64 KiB to 1 GiB";

    /// <summary>
    /// True when <paramref name="bytes"/> is a <see cref="SegmentSize"/> a journal opens with (<see cref="SegmentSizeRule"/>);
    /// the journal's own check, for callers that validate a setting before they open one.
    /// </summary>
    public static bool IsValidSegmentSize(long bytes) => bytes is >= (64 << 10) and <= (1 << 30) && bytes % 4096 == 0;

    /// <summary>
    /// The most bytes of key, headers and payload one record holds in a segment of <paramref name="segmentSize"/> bytes:
    /// the segment less its 128-byte header, less the record's 32-byte header (records are 8-byte aligned); a larger
    /// append is refused with <see cref="JournalErrorCode.RecordTooLarge"/>. 65,376 for 64 KiB segments.
    /// </summary>
    public static int MaxRecordContentBytes(int segmentSize) =>
        ((segmentSize - Internal.SegmentHeader.Size) & ~(Internal.RecordLayout.Alignment - 1)) - Internal.RecordLayout.HeaderSize;

    internal void Validate()
    {
        if (!IsValidSegmentSize(SegmentSize))
        {
            throw new ArgumentOutOfRangeException(nameof(SegmentSize), SegmentSize, $"Segment size must be {SegmentSizeRule}.");
        }

        if (IndexIntervalBytes < 512)
        {
            throw new ArgumentOutOfRangeException(nameof(IndexIntervalBytes), IndexIntervalBytes, "Index interval must be at least 512 bytes.");
        }

        if (FlushInterval <= TimeSpan.Zero)
        {
            throw new ArgumentOutOfRangeException(nameof(FlushInterval), FlushInterval, "Flush interval must be positive.");
        }

        if (InitialOffset < 0)
        {
            throw new ArgumentOutOfRangeException(nameof(InitialOffset), InitialOffset, "The initial offset must not be negative.");
        }

        if (MaxUndurableBytes <= 0)
        {
            throw new ArgumentOutOfRangeException(nameof(MaxUndurableBytes), MaxUndurableBytes, "Must be positive.");
        }
    }
}
