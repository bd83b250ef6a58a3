using FastBroker.Engine;

namespace FastBroker;

// The open's rebuild of the idempotent producers from the journals' newest records and producers.state.
public sealed partial class Broker
{
    /// <summary>
    /// Rebuilds the idempotent-producer window from the producer headers of each persistent topic's newest records,
    /// so a producer retrying after a broker restart is deduplicated like one retrying after a reconnect. The
    /// broker's own header is the last of its name in the block (a journal written before publishes carrying it were
    /// refused may hold a publisher's copy ahead of it). The rescan of a topic starts where <c>producers.state</c>'s
    /// capture was taken in its journal, or earlier, at <see cref="BrokerOptions.ProducerRecoveryRecords"/> newest records
    /// (at most <see cref="ProducerCheckpoint.RescanLimit"/> records, or that many, logged): every record the capture does
    /// not hold is read, however far the file trails the journal (a standby's copy); a topic the limit cuts short is logged
    /// once the rescans are done, with the producers the file names that no rescan saw. A file captured ahead of the
    /// journals (<see cref="AheadOfJournals"/>) with an entry neither of whose records they hold: every topic is rescanned
    /// from its first record (logged), since that producer's records they hold may lie anywhere before the points, so a
    /// retry of any of them is a duplicate. Then each id's newest epoch from <c>producers.epochs</c> and
    /// <c>producers.state</c>, also with <see cref="BrokerOptions.ProducerRecoveryRecords"/> 0 (which reads no window).
    /// </summary>
    private void RecoverProducers()
    {
        var scan = _options.ProducerRecoveryRecords;

        // A record older than ProducerExpiry does not bring its producer back: the sweep forgot it (ProducerRegistry.Sweep).
        var now = _options.StampClock.GetUtcNow().ToUnixTimeMilliseconds();
        var vouched = ProducerCheckpoint.Load(_options.DataDirectory, ProducerAt, name => _topics.TryGet(name, out var t) ? t : null, out var problem, out var epochs, out var capturedAt, out var capturedTime, out var ignored);
        var limit = Math.Max(scan, _options.ProducerRescanLimit);
        var ahead = scan != 0 && ignored > 0 ? AheadOfJournals(capturedAt) : null;
        if (ahead is not null)
        {
            _options.Log?.Invoke($"{ProducerCheckpoint.FileName} was captured ahead of this journal ({ahead}): {ignored} producers it names have neither their newest nor their previous record here, "
                + "and the records of theirs it holds may lie before any capture point, so every topic's producers are rescanned from its first record");
        }

        List<(string Topic, long Behind, long From, long To)>? cut = null;
        foreach (var topic in scan == 0 ? [] : _topics.All)
        {
            if (topic.Journal is not { } journal)
            {
                continue;
            }

            // From the capture point (a topic the capture does not name was created after it: from its start), so no
            // record written after the capture is left out; at least the newest records; at most the limit.
            var from = journal.NextOffset - scan;
            if (ahead is not null)
            {
                from = journal.FirstOffset;
            }
            else if (capturedAt is not null)
            {
                from = Math.Min(from, capturedAt.TryGetValue(topic.Name, out var point) && CapturedHere(topic, journal, point, capturedTime) ? point.Next : journal.FirstOffset);
            }

            from = Math.Max(journal.FirstOffset, from);
            if (journal.NextOffset - from > limit)
            {
                (cut ??= []).Add((topic.Name, journal.NextOffset - from, from, journal.NextOffset - limit - 1));
                from = journal.NextOffset - limit;
            }

            try
            {
                using var reader = journal.OpenReader(Journal.ReadStart.FromOffset(from));
                while (reader.TryRead(out var record))
                {
                    if (ProducerOf(record) is var (id, sequence, epoch) && !_producers.Expired(record.Timestamp, now))
                    {
                        _producers.Record(id, sequence, topic, record.Offset, record.Timestamp, epoch);
                    }
                }
            }
            catch (Journal.JournalCorruptionException e)
            {
                // A record damaged on disk (a sealed segment the open trusted): the topic's subscribers get the error at
                // it; the broker opens, and the rescan of this topic ends there.
                _options.Log?.Invoke($"topic '{topic.Name}': producer recovery stopped at a damaged record, producers whose records follow it are not deduplicated: {e.Message}");
            }
        }

        // Then the checkpoint: producers whose newest records the rescan did not reach (ProducerCheckpoint). Without
        // recovery (scan 0) its entries are not taken (nor the rescan's), but its epochs are, as producers.epochs's.
        foreach (var (id, highest, topic, offset, timestamp, epoch, previous) in scan == 0 ? [] : vouched)
        {
            if (!_producers.Expired(timestamp, now))
            {
                _producers.Vouch(id, highest, topic, offset, timestamp, epoch, previous);
            }
        }

        foreach (var (name, behind, from, to) in cut ?? [])
        {
            _options.Log?.Invoke($"topic '{name}': {(ahead is null ? $"{ProducerCheckpoint.FileName} was captured {behind} records before the journal's end" : $"its rescan from its first record is {behind} records")}, more than the {limit} records a restart rescans: "
                + $"producers whose records lie in offsets {from} to {to} only are not deduplicated (a retry of a sequence stored there after their entry's is stored again); {Unseen(vouched)}");
        }

        // And each id's newest epoch: the one InitProducer persisted before answering (producers.epochs, written only
        // durably) and the one in producers.state (whose last captures a power loss may have lost), the newer of the two
        // and the records', each with when the id was last in use (the later kept): fences also before its instance
        // wrote, and after its records left the rescan or its producer expired.
        var given = ProducerEpochFile.Load(_options.DataDirectory, now, out var epochProblem);
        foreach (var (id, epoch, seen) in given)
        {
            _producers.RestoreEpoch(id, epoch, seen, now);
        }

        foreach (var (id, epoch, seen) in epochs)
        {
            _producers.RestoreEpoch(id, epoch, seen, now);
        }

        foreach (var line in new[] { problem, epochProblem })
        {
            if (line is not null)
            {
                _options.Log?.Invoke(line);
            }
        }
    }

    /// <summary>
    /// Where <c>producers.state</c> was captured ahead of this node's journals, or null: a capture point of a topic this
    /// node holds in the same creation lies beyond its journal's end, or names a persistent topic this node does not hold
    /// (a standby's copy still catching up with the primary the file came from, a journal that lost its unsynced tail).
    /// An entry whose records the journals lack then says nothing of where the producer's records they hold are: before
    /// any capture point, in any topic. A point in another creation of the topic is not taken (<see cref="CapturedHere"/>).
    /// </summary>
    private string? AheadOfJournals(Dictionary<string, ProducerCheckpoint.CapturePoint>? capturedAt)
    {
        foreach (var (name, point) in capturedAt ?? [])
        {
            if (!_topics.TryGet(name, out var topic))
            {
                return $"it names topic '{name}' at offset {point.Next}, which this node does not hold";
            }

            if (topic.Journal is { } journal && point.Next > journal.NextOffset
                && (point.Incarnation == 0 || topic.Incarnation == 0 || point.Incarnation == topic.Incarnation))
            {
                return $"topic '{name}': captured at offset {point.Next}, the journal ends at {journal.NextOffset}";
            }
        }

        return null;
    }

    /// <summary>The most producer ids the line about a rescan cut short by its limit names (then "and K more").</summary>
    internal const int RescanLimitLoggedProducers = 8;

    /// <summary>
    /// For the line about a rescan cut short: the producers <c>producers.state</c> vouched for that no rescan saw a newer
    /// record of (its highest sequence is still the entry's), the ones a record in the unread range may belong to
    /// (lowest ids first, at most <see cref="RescanLimitLoggedProducers"/>); a producer the file does not name is not known.
    /// </summary>
    private string Unseen(List<(ulong Producer, ulong Highest, TopicState Topic, long Offset, long Timestamp, ulong Epoch, ProducerRegistry.Place Previous)> vouched)
    {
        var ids = vouched.Where(e => _producers.NextSequence(e.Producer) == e.Highest + 1).Select(e => e.Producer).Distinct().Order().ToList();
        var named = string.Join(", ", ids.Take(RescanLimitLoggedProducers).Select(id => id.ToString("x16", System.Globalization.CultureInfo.InvariantCulture)));
        return ids.Count switch
        {
            0 => $"{ProducerCheckpoint.FileName} names no producer that no rescan saw (one it does not name is not known)",
            1 => $"{ProducerCheckpoint.FileName} names 1 producer no rescan saw, which may have written there: {named} (and any producer it does not name)",
            <= RescanLimitLoggedProducers => $"{ProducerCheckpoint.FileName} names {ids.Count} producers no rescan saw, which may have written there: {named} (and any producer it does not name)",
            _ => $"{ProducerCheckpoint.FileName} names {ids.Count} producers no rescan saw, which may have written there: {named} and {ids.Count - RescanLimitLoggedProducers} more (and any producer it does not name)",
        };
    }

    /// <summary>
    /// Whether a capture point of <c>producers.state</c> for <paramref name="topic"/> was taken in this journal. A point
    /// and a topic that both carry their creation's id (<see cref="TopicState.Incarnation"/>; a version 8 file, a topic
    /// created since <c>topic.meta</c> carries one) are the same journal exactly when the ids are equal, whatever the
    /// clock did. Otherwise by the time: the record just below the point (or the journal's newest, if the point is past
    /// its end) was stamped no later than the capture; one stamped later was written after it (a wall clock stepped back
    /// makes it look so too, which only costs a longer rescan). Not this journal: the topic was deleted and created again
    /// under its name since (offsets restart at 0), or the journal holds another history, and every record of it may have
    /// been written after the capture (logged; the rescan starts at its first record). A file without the capture's time
    /// (version 6), a journal holding no record below the point or a record that cannot be read: taken as before.
    /// </summary>
    private bool CapturedHere(TopicState topic, Journal.JournalLog journal, ProducerCheckpoint.CapturePoint point, long? capturedTime)
    {
        if (point.Incarnation != 0 && topic.Incarnation != 0)
        {
            if (point.Incarnation == topic.Incarnation)
            {
                return true;
            }

            _options.Log?.Invoke($"topic '{topic.Name}': {ProducerCheckpoint.FileName}'s capture point (offset {point.Next}) was taken in another creation of the topic (id {point.Incarnation:x16}, this one {topic.Incarnation:x16}: "
                + "it was deleted and created again under its name since): producers are rescanned from its first record");
            return false;
        }

        var below = Math.Min(point.Next, journal.NextOffset) - 1;
        if (capturedTime is not { } captured || below < journal.FirstOffset || RecordTimestampAt(journal, below) is not { } stamped || stamped <= captured)
        {
            return true;
        }

        _options.Log?.Invoke($"topic '{topic.Name}': its record at offset {below} was written after {ProducerCheckpoint.FileName}'s capture (stamped {stamped}, captured at {captured} Unix ms), "
            + $"so the capture's point (offset {point.Next}) is not this journal's (the topic created again under its name, or another history): producers are rescanned from its first record");
        return false;
    }

    /// <summary>The timestamp of the record at <paramref name="offset"/>, if the journal holds it readable.</summary>
    private static long? RecordTimestampAt(Journal.JournalLog journal, long offset)
    {
        try
        {
            using var reader = journal.OpenReader(Journal.ReadStart.FromOffset(offset));
            while (reader.TryRead(out var record) && record.Offset <= offset)
            {
                if (record.Offset == offset)
                {
                    return record.Timestamp;
                }
            }

            return null;
        }
        catch (Journal.JournalCorruptionException)
        {
            return null;
        }
    }

    /// <summary>The producer id and sequence the record at <paramref name="offset"/> of a persistent topic carries, if any, and its timestamp.</summary>
    private (ulong Producer, ulong Sequence, ulong Epoch, long Timestamp)? ProducerAt(string topic, long offset)
    {
        if (!_topics.TryGet(topic, out var t) || t.Journal is not { } journal || offset < journal.FirstOffset || offset >= journal.NextOffset)
        {
            return null;
        }

        try
        {
            using var reader = journal.OpenReader(Journal.ReadStart.FromOffset(offset));
            while (reader.TryRead(out var record))
            {
                if (record.Offset == offset)
                {
                    return ProducerOf(record) is var (id, sequence, epoch) ? (id, sequence, epoch, record.Timestamp) : null;
                }

                if (record.Offset > offset)
                {
                    break;
                }
            }
        }
        catch (Journal.JournalCorruptionException)
        {
            // A damaged record vouches for nothing (as a record no longer there).
        }

        return null;
    }
}
