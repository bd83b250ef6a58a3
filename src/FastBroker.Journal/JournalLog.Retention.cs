using FastBroker.Journal.Internal;

namespace FastBroker.Journal;

/// <summary>
/// Retention and explicit head truncation: whole sealed segments only, oldest first, never past a floor
/// (<see cref="MinRetainedOffset"/>, <see cref="RetentionFloor"/>, a reader opened with <c>pinRetention</c>). Any other
/// reader's position does not count (limits retention, as in Kafka and NATS JetStream): a segment it is in is retired
/// all the same, and the reader finishes it from the mapping, then skips to the first retained record.
/// </summary>
public sealed partial class JournalLog
{
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
    /// <see cref="MinRetainedOffset"/>, <see cref="RetentionFloor"/> or a pinning reader's position. Any thread.
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
        long floor;
        try
        {
            floor = Math.Min(MinRetainedOffset, RetentionFloor?.Invoke() ?? long.MaxValue);
        }
        catch (ObjectDisposedException)
        {
            return 0; // the owner is closing: a floor that cannot be computed deletes nothing
        }

        lock (_segmentsLock)
        {
            // Under the lock that registers them: a pinning reader being opened is either seen here (its floor is
            // long.MinValue until it is placed) or looks for its segment after this pass has changed the list.
            foreach (var reader in _pinningReaders)
            {
                floor = Math.Min(floor, reader.PinnedOffset);
            }

            var segments = _segments;
            var total = segments.Sum(s => (long)s.Size);
            var k = 0;
            while (k < segments.Length - 1)
            {
                var s = segments[k];
                if (!s.IsSealed || s.BaseOffset + Segment.CountOf(s.Durable) > floor || !eligible(s, total))
                {
                    break; // the log stays contiguous: stop at the first segment that must stay
                }

                total -= s.Size;
                k++;
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
            // Readers holding it keep the mapping (and the unlinked file's blocks) until they move on.
            s.Retire();
            Segment.TryDelete(s.FilePath);
            Segment.TryDelete(IndexFile.PathFor(s.FilePath));
        }

        return removed.Length;
    }
}
