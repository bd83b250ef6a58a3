using System.Diagnostics;

namespace FastBroker.Engine;

// Dead letters: publishing a message that ran out of deliveries to the dead-letter topic.
internal sealed partial class WorkQueueGroup
{
    private long _stuckAtDamage = -1; // the damaged offset the feed could not pass, logged once
    private (long Next, long End, string Reason) _damagedRun = (0, 0, ""); // offsets of a damaged run left to dead-letter

    private async Task PublishDeadLetterAsync(DeadLetter dl, PooledMessage message)
    {
        try
        {
            var headers = new MessageHeaders(message.HeadersLength + 128);
            var original = MessageHeaders.Decode(message.Headers);
            foreach (var (name, value) in original)
            {
                // The broker's own entries stay behind: a dead letter's headers may be published again as they are.
                if (name is not (Broker.ExpiresHeader or Broker.ProducerHeader))
                {
                    headers.Add(name, value);
                }
            }

            headers.Add("fb-dlq-topic", Topic.Name)
                .Add("fb-dlq-group", Name)
                .Add("fb-dlq-offset", dl.Offset)
                .Add("fb-dlq-deliveries", dl.DeliveryCount)
                .Add("fb-dlq-error", Utf8Text.Truncate(dl.LastError, 1024));
            var payload = message.Payload.ToArray();
            var key = message.Key.ToArray();
            var loggedAt = 0L;
            for (var attempt = 0; ; attempt++)
            {
                try
                {
                    await _broker.PublishDeadLetterAsync(DeadLetterTopic, payload, key, headers, _stop.Token).ConfigureAwait(false);
                    if (attempt > 0)
                    {
                        _broker.Log($"work queue '{Topic.Name}' group '{Name}': dead letter of offset {dl.Offset} stored in '{DeadLetterTopic}' after {attempt + 1} attempts");
                    }

                    break;
                }
                catch (BrokerException e) when (IsPermanent(e.Code))
                {
                    // No retry can store it (the dead-letter topic's segments are too small for it, or its name is
                    // invalid): retrying would hold the group's floor, so its window and retention, for ever. It is
                    // dropped instead, loudly; it stays readable in the source topic at its offset until retention.
                    Interlocked.Increment(ref _deadLettersDropped);
                    _broker.Log($"work queue '{Topic.Name}' group '{Name}': dead letter of offset {dl.Offset} DROPPED: '{DeadLetterTopic}' can never store it ({e.Code}: {e.Message}); the message is still in '{Topic.Name}' at offset {dl.Offset} until retention removes it");
                    break;
                }
                catch (BrokerException e) when (e.Code != BrokerErrorCode.Closed && !_stop.IsCancellationRequested)
                {
                    // The dead-letter topic refused it for now (missing while auto-creation is off, storage full…).
                    // The message is not done until it is there: the group's floor waits, and retention with it, and
                    // this retries (at most every 5 s) until the cause is fixed or the broker closes. Said at the first
                    // refusal and once a minute after.
                    if (attempt == 0 || Stopwatch.GetElapsedTime(loggedAt) >= TimeSpan.FromMinutes(1))
                    {
                        loggedAt = Stopwatch.GetTimestamp();
                        _broker.Log($"work queue '{Topic.Name}' group '{Name}': dead letter of offset {dl.Offset} refused by '{DeadLetterTopic}' ({e.Code}: {e.Message}); retrying, the group's floor waits at it (attempt {attempt + 1})");
                    }

                    await Task.Delay(TimeSpan.FromMilliseconds(Math.Min(5000, 100 << Math.Min(attempt, 6))), _stop.Token).ConfigureAwait(false);
                }
            }

            lock (_gate)
            {
                if (!_disposed)
                {
                    _store.MarkDone(dl.Offset);
                    _store.AdvanceFloorWhileDone();
                    _store.RequestSync();
                    Topic.Replication?.GroupStateChanged(_stateFile);
                }
            }
        }
        catch (Exception e) when (e is BrokerException or OperationCanceledException)
        {
            // Closing before it was dead-lettered durably: the group state still has it as not done, so the message
            // is redelivered after a restart rather than lost.
        }
        finally
        {
            Interlocked.Decrement(ref _pendingDeadLetters);
            Release(message);
        }
    }

    /// <summary>
    /// The feed met a damaged run of records (<paramref name="e"/>, from the feed's next offset up to the run's
    /// <see cref="Journal.JournalCorruptionException.ResumeOffset"/>, learned in one pass over it): they can never be delivered,
    /// and waiting at them would hold the group's floor, its window and the topic's retention for ever, as a dead letter
    /// no topic can store would. The feed goes past the run with one seek, and each of its offsets is dead-lettered as a
    /// poison message is once out of deliveries (0 deliveries, an empty key, headers and payload since its bytes are not
    /// the ones written, <c>fb-dlq-error</c> naming the damage), as far as the group's window allows now, the rest by the
    /// next pumps (<see cref="DeadLetterDamagedRun"/>); the topic counted the whole run once. The damaged bytes stay in
    /// the topic's journal (<c>fastbroker journal dump --past-damage</c>) until retention. Called under the group's lock;
    /// false when the feed cannot go on yet (stuck at the damage, or part of the run still to dead-letter).
    /// </summary>
    private bool FeedPastDamage(BrokerException e)
    {
        var damaged = _feed.NextOffset;
        var corruption = e.InnerException as Journal.JournalCorruptionException;
        long next;
        try
        {
            next = _feed.SkipDamaged(Math.Max(corruption?.ResumeOffset ?? 0, damaged + 1));
        }
        catch (BrokerException again) when (again.Code == BrokerErrorCode.DamagedRecord)
        {
            // The seek past it refused the start (it passes over every kind of damage before its start, a zero length
            // word among the records included, so none is known to): the feed waits at it (the timer's ticks try
            // again, logged once) rather than guess where the records resume.
            if (_stuckAtDamage != damaged)
            {
                _stuckAtDamage = damaged;
                _broker.Log($"work queue '{Topic.Name}' group '{Name}': the feed cannot go past the damaged record at offset {damaged}: {again.Message}; it waits there");
            }

            return false;
        }

        _damagedRun = (damaged, next, $"damaged record: {corruption?.Reason ?? "unreadable"} at offset {damaged} of '{Topic.Name}' ({e.Message}); its key, headers and payload are not delivered");
        _broker.Log($"work queue '{Topic.Name}' group '{Name}': offset{(next - damaged > 1 ? $"s {damaged} to {next - 1}" : $" {damaged}")} dead-lettered to '{DeadLetterTopic}' unread (damaged record); the group goes on at offset {next}");
        return DeadLetterDamagedRun();
    }

    /// <summary>
    /// Dead-letters the offsets of the damaged run the feed went past (<see cref="FeedPastDamage"/>) that are left, as
    /// many as the group's window has room for (half of it, as the feed's read-ahead: each is done, so the floor passes
    /// them once its dead letter is stored). True once the run is all dead-lettered (or there is none): the feed reads
    /// on. Under the group's lock.
    /// </summary>
    private bool DeadLetterDamagedRun()
    {
        var (offset, end, reason) = _damagedRun;
        var room = (_store.Window / 2) - (_state.Counters.NextOffset - _store.Floor);
        for (; offset < end && room > 0; offset++, room--)
        {
            var message = _pool.Count > 0 ? _pool.Pop() : new PooledMessage();
            message.Fill(new MessageView(Topic, offset, 0, [], [], [], 0), 0);
            _outstanding[offset] = message;
            _state.DeadLetterUnread(offset, reason);
        }

        _damagedRun = (offset, end, reason);
        return offset >= end;
    }

    /// <summary>A dead-letter refusal that a retry cannot change.</summary>
    private static bool IsPermanent(BrokerErrorCode code) =>
        code is BrokerErrorCode.MessageTooLarge or BrokerErrorCode.InvalidName or BrokerErrorCode.InvalidArgument;
}
