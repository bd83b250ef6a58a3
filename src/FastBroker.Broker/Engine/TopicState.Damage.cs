using FastBroker.Journal;

namespace FastBroker.Engine;

// Damaged records readers met: the error each reader gets, and the topic's one report of each.
internal sealed partial class TopicState
{
    // 64 offsets: a topic with more damaged records than that has a damaged disk, and its log says so 64 times already.
    // Past them a damaged offset cannot be told from one met before (readers meet the same one again and again), so the
    // count stops there and says it is a lower bound (DamagedRecordsAtLeast); the lowest offset is kept exact.
    internal const int MaxDamagedOffsetsKept = 64;

    private readonly SortedSet<long> _damagedOffsets = [];
    private long _damagedRecords;
    private long _firstDamagedOffset = -1;
    private bool _damagedOffsetsFull;

    /// <summary>Where a damaged record is reported (the broker's log), once per offset.</summary>
    public Action<string>? Log { get; init; }

    /// <summary>Damaged records readers of this topic met since the broker's open, each counted once.</summary>
    public long DamagedRecords => Volatile.Read(ref _damagedRecords);

    /// <summary>
    /// True once readers met a damaged offset beyond the <see cref="MaxDamagedOffsetsKept"/> kept:
    /// <see cref="DamagedRecords"/> is then a lower bound (at least that many).
    /// </summary>
    public bool DamagedRecordsAtLeast
    {
        get
        {
            lock (_damagedOffsets)
            {
                return _damagedOffsetsFull;
            }
        }
    }

    /// <summary>The lowest offset of a damaged record readers met (also past those kept), or -1.</summary>
    public long FirstDamagedOffset
    {
        get
        {
            lock (_damagedOffsets)
            {
                return _firstDamagedOffset;
            }
        }
    }

    /// <summary>
    /// A reader of this topic met the damaged record <paramref name="e"/> names: counts and logs it the first time any
    /// reader meets that offset, and returns the error for the reader (<see cref="BrokerErrorCode.DamagedRecord"/>,
    /// naming the topic, the offset, the file and how to go past it). Any reader's thread; not on the path of a record
    /// that reads.
    /// </summary>
    public BrokerException Damaged(JournalCorruptionException e)
    {
        var offset = e.ExpectedOffset;
        var first = false;
        var overflow = false;
        lock (_damagedOffsets)
        {
            if (!_damagedOffsets.Contains(offset))
            {
                if (_damagedOffsets.Count < MaxDamagedOffsetsKept)
                {
                    first = _damagedOffsets.Add(offset);
                    Interlocked.Increment(ref _damagedRecords);
                }
                else
                {
                    overflow = !_damagedOffsetsFull; // the first offset past those kept: said once
                    _damagedOffsetsFull = true;
                }

                _firstDamagedOffset = _firstDamagedOffset < 0 ? offset : Math.Min(_firstDamagedOffset, offset);
            }
        }

        var what = $"topic '{Name}': the record at offset {offset} is damaged ({e.Reason} in '{e.FilePath}' at byte position {e.Position}: its bytes changed on disk after they were written) and is never delivered";
        if (first)
        {
            Log?.Invoke($"{what}; subscriptions reaching it end with DamagedRecord, work-queue groups dead-letter it; run 'fastbroker journal verify' on the topic's journal, and repair it or restore the segment from a good copy");
        }
        else if (overflow)
        {
            Log?.Invoke($"{what}; more than {MaxDamagedOffsetsKept} damaged records met: from here on they are not logged one by one, and the topic's damaged-record count says at least {MaxDamagedOffsetsKept} (damagedRecordsAtLeast); run 'fastbroker journal dump --past-damage' on the topic's journal to see every damaged place");
        }

        return new BrokerException(BrokerErrorCode.DamagedRecord, $"{what}; subscribe from offset {offset + 1} to read the records after it", e);
    }
}
