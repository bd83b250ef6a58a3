using FastBroker.Journal;

namespace FastBroker.Engine;

// Damaged records readers met: the error each reader gets, and the topic's one report of each.
internal sealed partial class TopicState
{
    // 64 runs of damaged offsets: a topic with more damaged places than that has a damaged disk, and its log says so 64
    // times already. Past them a damaged run cannot be told from one met before (readers meet the same one again and
    // again), so the count stops there and says it is a lower bound (DamagedRecordsAtLeast); the lowest offset is kept
    // exact. A run is one or more consecutive damaged offsets (JournalCorruptionException.ResumeOffset), kept as one.
    internal const int MaxDamagedOffsetsKept = 64;

    private readonly List<(long Start, long End)> _damagedRuns = []; // disjoint, each [Start, End)
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
            lock (_damagedRuns)
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
            lock (_damagedRuns)
            {
                return _firstDamagedOffset;
            }
        }
    }

    /// <summary>
    /// A reader of this topic met the damaged run <paramref name="e"/> names (offsets <see cref="JournalCorruptionException.ExpectedOffset"/>
    /// up to <see cref="JournalCorruptionException.ResumeOffset"/>): counts its offsets no reader met before and logs it
    /// once (the range), and returns the error for the reader (<see cref="BrokerErrorCode.DamagedRecord"/>, naming the
    /// topic, the offsets, the file and where to go on). Any reader's thread; not on the path of a record that reads.
    /// </summary>
    public BrokerException Damaged(JournalCorruptionException e)
    {
        var offset = e.ExpectedOffset;
        var resume = Math.Max(e.ResumeOffset, offset + 1);
        var first = false;
        var overflow = false;
        lock (_damagedRuns)
        {
            var (known, touching) = (0L, 0);
            foreach (var (start, end) in _damagedRuns)
            {
                known += Math.Max(0, Math.Min(end, resume) - Math.Max(start, offset));
                touching += start <= resume && end >= offset ? 1 : 0;
            }

            if (known < resume - offset)
            {
                if (_damagedRuns.Count < MaxDamagedOffsetsKept || touching > 0)
                {
                    // Merged with the runs it overlaps or adjoins: one run, its new offsets counted.
                    var (low, high) = (offset, resume);
                    foreach (var (start, end) in _damagedRuns.Where(r => r.Start <= resume && r.End >= offset))
                    {
                        (low, high) = (Math.Min(low, start), Math.Max(high, end));
                    }

                    _damagedRuns.RemoveAll(r => r.Start <= resume && r.End >= offset);
                    _damagedRuns.Add((low, high));
                    Interlocked.Add(ref _damagedRecords, resume - offset - known);
                    first = true;
                }
                else
                {
                    overflow = !_damagedOffsetsFull; // the first run past those kept: said once
                    _damagedOffsetsFull = true;
                }

                _firstDamagedOffset = _firstDamagedOffset < 0 ? offset : Math.Min(_firstDamagedOffset, offset);
            }
        }

        var records = resume - offset > 1 ? $"the records at offsets {offset} to {resume - 1} are" : $"the record at offset {offset} is";
        var what = $"topic '{Name}': {records} damaged ({e.Reason} in '{e.FilePath}' at byte position {e.Position}: its bytes changed on disk after they were written) and {(resume - offset > 1 ? "are" : "is")} never delivered";
        if (first)
        {
            Log?.Invoke($"{what}; subscriptions reaching it end with DamagedRecord, work-queue groups dead-letter it; run 'fastbroker journal verify' on the topic's journal, and repair it or restore the segment from a good copy");
        }
        else if (overflow)
        {
            Log?.Invoke($"{what}; more than {MaxDamagedOffsetsKept} damaged records met: from here on they are not logged one by one, and the topic's damaged-record count ({DamagedRecords}) is a lower bound (damagedRecordsAtLeast); run 'fastbroker journal dump --past-damage' on the topic's journal to see every damaged place");
        }

        return new BrokerException(BrokerErrorCode.DamagedRecord, $"{what}; subscribe from offset {resume} to read the records after {(resume - offset > 1 ? "them" : "it")}", e);
    }
}
