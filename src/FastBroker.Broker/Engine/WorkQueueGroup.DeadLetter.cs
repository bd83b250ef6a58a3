using System.Diagnostics;

namespace FastBroker.Engine;

// Dead letters: publishing a message that ran out of deliveries to the dead-letter topic.
internal sealed partial class WorkQueueGroup
{
    private long _stuckAtDamage = -1; // the damaged offset the feed could not pass, logged once
    private (long Next, long End, string Reason) _damagedRun = (0, 0, ""); // offsets of a damaged run left to dead-letter

    /// <summary>
    /// Publishes <paramref name="dl"/> to the dead-letter topic, then marks its offset done; started without being awaited,
    /// so nothing may escape it: a failure that escaped would end it unobserved, the offset never done and the group's
    /// floor (its window, the topic's retention) held there until a restart with nothing said. A refusal no retry can
    /// change drops the dead letter (counted, logged); any other failure, a refusal that may pass or an exception of
    /// another type (a bug's, say), is retried with the same backoff until the
    /// dead letter is stored or the group closes, <see cref="GroupSnapshot.DeadLettersPending"/> counting it meanwhile.
    /// Whatever happens the message's reference and the pending count are given back once.
    /// </summary>
    private async Task PublishDeadLetterAsync(DeadLetter dl, PooledMessage message)
    {
        try
        {
            MessageHeaders? headers = null;
            byte[] payload = [], key = [];
            var loggedAt = 0L;
            string? loggedCause = null;
            for (var attempt = 0; ; attempt++)
            {
                try
                {
                    if (headers is null)
                    {
                        // Built in the attempt, so that a failure here is handled as the publish's would be.
                        payload = message.Payload.ToArray();
                        key = message.Key.ToArray();
                        headers = DeadLetterHeaders(dl, message);
                    }

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
                    // this retries (at most every 5 s) until the cause is fixed or the broker closes.
                    LogRetry(dl, attempt, e.Code.ToString(), $"refused by '{DeadLetterTopic}' ({e.Code}: {e.Message})", ref loggedAt, ref loggedCause);
                    await Task.Delay(RetryDelay(attempt), _stop.Token).ConfigureAwait(false);
                }
                catch (Exception e) when (e is not BrokerException && !_stop.IsCancellationRequested)
                {
                    // Not a refusal the broker names (an exception of a bug, say): it
                    // may pass like one, and dropping the message on a failure nobody classified would lose it, so it
                    // is retried alike, its type and message said.
                    LogRetry(dl, attempt, e.GetType().FullName!, $"not stored in '{DeadLetterTopic}' ({e.GetType().Name}: {e.Message})", ref loggedAt, ref loggedCause);
                    await Task.Delay(RetryDelay(attempt), _stop.Token).ConfigureAwait(false);
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
        catch (Exception e) when (e is BrokerException or OperationCanceledException || _stop.IsCancellationRequested)
        {
            // Closing before it was dead-lettered durably: the group state still has it as not done, so the message
            // is redelivered after a restart rather than lost.
        }
        catch (Exception e)
        {
            // Stored, but marking it done failed: the group state still has it as not done (delivered again after a
            // restart, so dead-lettered twice); said rather than lost in an unobserved task.
            _broker.Log($"work queue '{Topic.Name}' group '{Name}': dead letter of offset {dl.Offset} stored in '{DeadLetterTopic}' but not marked done ({e.GetType().Name}: {e.Message}); the group's floor waits at it until a restart");
        }
        finally
        {
            try
            {
                Release(message);
            }
            finally
            {
                Interlocked.Decrement(ref _pendingDeadLetters); // last: 0 pending means every dead-letter task has ended
            }
        }
    }

    private MessageHeaders DeadLetterHeaders(DeadLetter dl, PooledMessage message)
    {
        var headers = new MessageHeaders(message.HeadersLength + 128);
        foreach (var (name, value) in MessageHeaders.Decode(message.Headers))
        {
            // The broker's own entries stay behind: a dead letter's headers may be published again as they are.
            if (name is not (Broker.ExpiresHeader or Broker.ProducerHeader))
            {
                headers.Add(name, value);
            }
        }

        return headers.Add("fb-dlq-topic", Topic.Name)
            .Add("fb-dlq-group", Name)
            .Add("fb-dlq-offset", dl.Offset)
            .Add("fb-dlq-deliveries", dl.DeliveryCount)
            .Add("fb-dlq-error", Utf8Text.Truncate(dl.LastError, 1024));
    }

    /// <summary>100 ms doubling to at most 5 s.</summary>
    private static TimeSpan RetryDelay(int attempt) => TimeSpan.FromMilliseconds(Math.Min(5000, 100 << Math.Min(attempt, 6)));

    /// <summary>
    /// A dead letter not stored yet, retried: said at its first failure, at a failure of another cause (a refusal code,
    /// an exception type) and once a minute after, so a retry every 5 s does not flood the log.
    /// </summary>
    private void LogRetry(DeadLetter dl, int attempt, string cause, string what, ref long loggedAt, ref string? loggedCause)
    {
        if (attempt == 0 || cause != loggedCause || Stopwatch.GetElapsedTime(loggedAt) >= TimeSpan.FromMinutes(1))
        {
            loggedAt = Stopwatch.GetTimestamp();
            loggedCause = cause;
            _broker.Log($"work queue '{Topic.Name}' group '{Name}': dead letter of offset {dl.Offset} {what}; retrying, the group's floor waits at it (attempt {attempt + 1})");
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
