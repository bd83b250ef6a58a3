using FastBroker.Journal.Internal;

namespace FastBroker.Journal;

/// <summary>
/// Retention and explicit head truncation: whole sealed segments only, oldest first, never past a floor
/// (<see cref="MinRetainedOffset"/>, <see cref="RetentionFloor"/>, a reader opened with <c>pinRetention</c> within its
/// <see cref="JournalReader.MaxRetentionHoldBytes"/>). Any other reader's position does not count (limits retention, as in Kafka and NATS JetStream): a segment it is in is retired
/// all the same; a parked reader (<see cref="JournalReader.Park"/>) lets go of it in the same pass, one that is reading
/// finishes it from the mapping or until it parks, and either then skips to the first retained record.
/// </summary>
public sealed partial class JournalLog
{
    private long _pinOverrides;
    private long _retentionFloorFailures;
    private string? _lastFloorFailure; // the cause last logged, until the callback answers again

    /// <summary>
    /// Times a retention or truncation pass deleted records a pinning reader had not read, because keeping them would
    /// have held retention back by more than that reader's <see cref="JournalReader.MaxRetentionHoldBytes"/> (one per
    /// reader passed per pass). Grows only. Any thread.
    /// </summary>
    public long PinOverrides => Volatile.Read(ref _pinOverrides);

    /// <summary>
    /// Retention or truncation passes that deleted nothing because <see cref="RetentionFloor"/> threw (the floor was
    /// unknown). Grows only. Any thread.
    /// </summary>
    public long RetentionFloorFailures => Volatile.Read(ref _retentionFloorFailures);

    /// <summary>
    /// Applies <see cref="JournalOptions.RetentionMaxAge"/> and <see cref="JournalOptions.RetentionMaxBytes"/>
    /// now (the flusher also does it every <see cref="JournalOptions.RetentionCheckInterval"/>). Any thread.
    /// </summary>
    /// <returns>Segments deleted.</returns>
    public int ApplyRetention() => ApplyRetention(DateTimeOffset.UtcNow);

    /// <summary>Applies retention as if the time were <paramref name="now"/> (tests, tools).</summary>
    /// <returns>Segments deleted.</returns>
    public int ApplyRetention(DateTimeOffset now)
    {
        var maxAge = _options.RetentionMaxAge;
        var maxBytes = _options.RetentionMaxBytes;
        if (maxAge is null && maxBytes is null)
        {
            return 0;
        }

        var cutoff = maxAge is { } age ? now.ToUnixTimeMilliseconds() - (long)age.TotalMilliseconds : long.MinValue;
        return DeleteOldSegments((s, total) => s.LastTimestamp < cutoff || (maxBytes is { } limit && total > limit));
    }

    /// <summary>
    /// Explicit head truncation (FasterLog's <c>TruncateUntil</c>): deletes every sealed segment whose records are
    /// all below <paramref name="offset"/>, regardless of retention limits, but never at or above
    /// <see cref="MinRetainedOffset"/>, <see cref="RetentionFloor"/> or a pinning reader's position (within its
    /// <see cref="JournalReader.MaxRetentionHoldBytes"/>). Any thread.
    /// </summary>
    /// <returns>Segments deleted.</returns>
    public int TruncateBefore(long offset) =>
        DeleteOldSegments((s, _) => s.BaseOffset + Segment.CountOf(s.Durable) <= offset);

    private void MaybeApplyRetention()
    {
        if (_options.RetentionMaxAge is null && _options.RetentionMaxBytes is null)
        {
            return;
        }

        var now = Environment.TickCount64;
        if (now - _lastRetentionTicks >= (long)_options.RetentionCheckInterval.TotalMilliseconds)
        {
            _lastRetentionTicks = now;
            ApplyRetention();
        }
    }

    private int DeleteOldSegments(Func<Segment, long, bool> eligible)
    {
        Segment[] removed;
        if (!TryAskRetentionFloor(out var ownerFloor))
        {
            return 0;
        }

        var floor = Math.Min(MinRetainedOffset, ownerFloor);

        lock (_segmentsLock)
        {
            // Under the lock that registers them: a pinning reader being opened is either seen here (its floor is
            // long.MinValue until it is placed) or looks for its segment after this pass has changed the list.
            List<(JournalReader Reader, long Pinned)>? bounded = null;
            foreach (var registration in _pinningReaders)
            {
                if (!registration.TryGetTarget(out var reader))
                {
                    continue; // collected undisposed: no floor (its finalizer takes the entry out)
                }

                var pinned = reader.PinnedOffset;
                if (pinned == long.MinValue || reader.MaxRetentionHoldBytes == long.MaxValue)
                {
                    floor = Math.Min(floor, pinned); // no bound, or not placed yet: a floor like any other
                }
                else
                {
                    (bounded ??= []).Add((reader, pinned));
                }
            }

            var segments = _segments;
            var k = DeletablePrefix(segments, floor, eligible);
            if (bounded is not null && k > 0)
            {
                k = ApplyBoundedPins(segments, k, bounded);
            }

            if (k == 0)
            {
                return 0;
            }

            removed = segments[..k];
            Volatile.Write(ref _segments, segments[k..]);
        }

        foreach (var s in removed)
        {
            // Out of the list first, then retired: a reader that finds it retired looks again and sees the new list.
            // Readers reading in it keep the mapping (and the unlinked file's blocks) until they park or move on.
            s.Retire();
            Segment.TryDelete(IndexFile.PathFor(s.FilePath)); // index first: a stale one must never outlive its segment
            Segment.TryDelete(s.FilePath);
        }

        // Parked readers (paused consumers) hold no span: their deleted segments go now, not when they read again.
        ReleaseRetiredSegmentsOfParkedReaders();
        return removed.Length;
    }

    /// <summary>
    /// Asks <see cref="RetentionFloor"/>. Whatever it throws means "floor unknown": this pass deletes nothing (false),
    /// is counted in <see cref="RetentionFloorFailures"/> and logged once per cause (type and message) to
    /// <see cref="JournalOptions.Log"/>, and the next pass asks again. On the flusher thread an exception let through
    /// would end the process; and the owner's failure (a broker shutting down, say) says nothing about the journal's
    /// disk, so it does not fault the journal either.
    /// </summary>
    private bool TryAskRetentionFloor(out long floor)
    {
        try
        {
            floor = RetentionFloor?.Invoke() ?? long.MaxValue;
        }
        catch (Exception e)
        {
            floor = long.MaxValue;
            Interlocked.Increment(ref _retentionFloorFailures);
            var cause = e.GetType().FullName + ": " + e.Message;
            if (e is not ObjectDisposedException && Interlocked.Exchange(ref _lastFloorFailure, cause) != cause)
            {
                LogSafely($"journal {_directory}: the retention floor callback threw {cause}; retention deletes nothing until it answers");
            }

            return false;
        }

        if (Volatile.Read(ref _lastFloorFailure) is not null && Interlocked.Exchange(ref _lastFloorFailure, null) is not null)
        {
            LogSafely($"journal {_directory}: the retention floor callback answers again; retention resumes");
        }

        return true;
    }

    private void LogSafely(string line)
    {
        try
        {
            _options.Log?.Invoke(line);
        }
        catch (Exception)
        {
            // A log sink that throws must not take the flusher down either.
        }
    }

    /// <summary>
    /// The number of leading segments that may go: sealed, ending at or below <paramref name="floor"/>, and
    /// <paramref name="eligible"/> (given the bytes retained if the ones before them go). Never the last segment.
    /// </summary>
    private static int DeletablePrefix(Segment[] segments, long floor, Func<Segment, long, bool> eligible)
    {
        var total = segments.Sum(s => (long)s.Size);
        var k = 0;
        while (k < segments.Length - 1)
        {
            var s = segments[k];
            if (!s.IsSealed || EndOf(s) > floor || !eligible(s, total))
            {
                break; // the log stays contiguous: stop at the first segment that must stay
            }

            total -= s.Size;
            k++;
        }

        return k;
    }

    /// <summary>
    /// Pinning readers with a <see cref="JournalReader.MaxRetentionHoldBytes"/>: of the first <paramref name="k"/>
    /// segments (what the limits and every other floor let go), each reader holds those it has not finished. One that
    /// would hold more than its bound is passed (its pin ignored, counted); the others' pins stand. Returns how many of
    /// the <paramref name="k"/> go. Under the segments lock.
    /// </summary>
    private int ApplyBoundedPins(Segment[] segments, int k, List<(JournalReader Reader, long Pinned)> bounded)
    {
        var floor = long.MaxValue;
        List<(JournalReader Reader, long Pinned)>? passed = null;
        foreach (var (reader, pinned) in bounded)
        {
            var held = 0L;
            for (var i = k - 1; i >= 0 && EndOf(segments[i]) > pinned; i--)
            {
                held += segments[i].Size;
            }

            if (held <= reader.MaxRetentionHoldBytes)
            {
                floor = Math.Min(floor, pinned);
            }
            else
            {
                (passed ??= []).Add((reader, pinned));
            }
        }

        // Ends only grow along the list: a lower floor keeps a suffix of what the others let go.
        while (k > 0 && EndOf(segments[k - 1]) > floor)
        {
            k--;
        }

        if (passed is not null && k > 0)
        {
            foreach (var (reader, pinned) in passed)
            {
                if (EndOf(segments[k - 1]) > pinned)
                {
                    reader.CountPinOverride();
                    Interlocked.Increment(ref _pinOverrides);
                }
            }
        }

        return k;
    }

    /// <summary>The offset after a segment's last durable record.</summary>
    private static long EndOf(Segment s) => s.BaseOffset + Segment.CountOf(s.Durable);
}
