using System.Collections.Concurrent;
using FastBroker.Journal;
using FastBroker.Threading;

namespace FastBroker.Engine;

/// <summary>
/// For an fsynced topic: confirms publishes once the group commit covering them has completed, and wakes the
/// topic's readers then (readers see only durable records). The dispatcher queues confirmations and raises the
/// target; one async loop per topic waits on the journal (no thread per waiter) and completes them in order.
/// </summary>
internal sealed class DurabilityNotifier
{
    private readonly TopicState _topic;
    private readonly JournalLog _journal;
    private readonly ConcurrentQueue<PendingConfirmation> _pending = new();
    private readonly AsyncSignal _kick = new();
    private readonly CancellationTokenSource _stop = new();
    private long _target = -1;
    private Task? _loop;

    public DurabilityNotifier(TopicState topic, JournalLog journal)
    {
        _topic = topic;
        _journal = journal;
    }

    public void Start() => _loop = Task.Run(RunAsync);

    /// <summary>The loop's task once started (tests: whether it ended).</summary>
    internal Task? Loop => _loop;

    /// <summary>Dispatcher thread: confirm once the offset is durable.</summary>
    public void Enqueue(in PendingConfirmation confirmation) => _pending.Enqueue(confirmation);

    /// <summary>Dispatcher thread: the newest offset that must become durable.</summary>
    public void Target(long offset) => Volatile.Write(ref _target, offset);

    /// <summary>Dispatcher thread, end of batch: there is something to wait for.</summary>
    public void Kick() => _kick.Set();

    /// <summary>Stops the loop after completing what is durable; fails what never became durable.</summary>
    public async Task StopAsync(TimeSpan timeout)
    {
        // The pipeline has drained: give the last group commit the chance to cover everything accepted.
        var target = Volatile.Read(ref _target);
        if (target >= 0)
        {
            try
            {
                _journal.WaitForDurable(target, timeout);
            }
            catch (JournalException)
            {
            }
        }

        _kick.Set();
        await _stop.CancelAsync().ConfigureAwait(false);
        _kick.Set();
        if (_loop is not null)
        {
            await _loop.ConfigureAwait(false);
        }

        CompleteDurable();
        while (_pending.TryDequeue(out var p))
        {
            p.Fail(BrokerErrorCode.Closed, $"topic '{_topic.Name}': broker closed before the message was flushed");
        }
    }

    /// <summary>
    /// The topic is disposed without <see cref="StopAsync"/> (an open of the topics or a creation that failed after the
    /// journal opened: nothing was published): ends the loop, which would otherwise stay parked for good on a journal
    /// that is going away, without waiting on a flush of it. After <see cref="StopAsync"/> it changes nothing.
    /// </summary>
    public void Abandon()
    {
        _stop.Cancel(); // before the kick: the woken loop sees it and returns
        _kick.Set();
    }

    private async Task RunAsync()
    {
        while (!_stop.IsCancellationRequested)
        {
            await _kick.WaitAsync().ConfigureAwait(false);
            while (!_stop.IsCancellationRequested)
            {
                var target = Volatile.Read(ref _target);
                if (target >= 0 && _journal.DurableOffset <= target)
                {
                    try
                    {
                        await _journal.WaitForDurableAsync(target, _stop.Token).ConfigureAwait(false);
                    }
                    catch (OperationCanceledException)
                    {
                        return;
                    }
                    catch (ObjectDisposedException)
                    {
                        return;
                    }
                    catch (JournalException ex)
                    {
                        FailAll(new BrokerException(BrokerErrorCode.StorageError, $"topic '{_topic.Name}': flush failed, not confirmed: {ex.Message}", ex));
                    }
                }

                CompleteDurable();
                _topic.WakeListeners();
                if (Volatile.Read(ref _target) == target)
                {
                    break;
                }
            }
        }
    }

    /// <summary>
    /// Confirms what the group commit covers. On the primary of a pair the lease is read again here, after the wait
    /// (<see cref="ReplicationGate.MayConfirm"/>, once per release): it may have run out during the fsync, long after
    /// the journaler's check of the batch, and a deposed node withholds what it would confirm.
    /// </summary>
    private void CompleteDurable()
    {
        var durable = _journal.DurableOffset;
        if (!_pending.TryPeek(out var first) || first.Offset >= durable)
        {
            return;
        }

        var withhold = _topic.Replication is { MayConfirm: false } ? _topic.Replication : null;
        while (_pending.TryPeek(out var p) && p.Offset < durable)
        {
            _pending.TryDequeue(out _);
            if (withhold is not null)
            {
                withhold.Withhold(p);
            }
            else
            {
                p.Confirm();
            }
        }
    }

    private void FailAll(BrokerException error)
    {
        while (_pending.TryDequeue(out var p))
        {
            p.Fail(error.Code, error.Message);
        }
    }
}

/// <summary>A confirmation waiting for a group commit: for the embedded awaiter and/or a claim sink.</summary>
internal readonly record struct PendingConfirmation(long Offset, bool Duplicate, PublishCompletion? Completion, IPublishConfirmSink? Sink, ulong Token)
{
    public void Confirm()
    {
        Completion?.Complete(Offset);
        Sink?.OnPublishConfirmed(Token, Offset, Duplicate);
    }

    /// <summary>Confirms through <paramref name="batch"/>: a connection that can send its confirmations itself does so at the batch's end.</summary>
    public void Confirm(ConfirmBatch batch)
    {
        Completion?.Complete(Offset);
        batch.Confirm(Sink, Token, Offset, Duplicate);
    }

    public void Fail(BrokerErrorCode code, string reason)
    {
        Completion?.Fail(new BrokerException(code, reason));
        Sink?.OnPublishFailed(Token, code, reason);
    }
}
