using System.Collections.Concurrent;
using System.Runtime.CompilerServices;
using FastBroker.Engine;
using FastBroker.Threading;

namespace FastBroker;

/// <summary>
/// One member of a work-queue group: receives messages no other member has at the same time, up to its prefetch
/// unacked, and acks or nacks each by its delivery (offset + delivery count). Dispose to leave gracefully (its
/// unacked messages go back to the group at once); <see cref="Abandon"/> simulates a crash (they wait for their
/// visibility timeout). Either way, deliveries assigned to it but never fetched go back at once with their delivery
/// count restored, as do those whose visibility timeout passes before they are fetched: only a fetch counts as an
/// attempt. One consumer at a time per member.
/// </summary>
public sealed class WorkQueueMember : IDisposable
{
    private readonly WorkQueueGroup _group;
    private readonly ConcurrentQueue<MemberDelivery> _queue = new();
    private readonly AsyncSignal _signal = new();
    private int _closed;
    private int _prefetch;

    /// <summary>The group at run time (tests).</summary>
    internal WorkQueueGroup RuntimeGroup => _group;

    internal WorkQueueMember(WorkQueueGroup group, int id, int prefetch)
    {
        _group = group;
        Id = id;
        _prefetch = prefetch;
    }

    /// <summary>The member's id within its group.</summary>
    public int Id { get; }

    /// <summary>Unacked messages this member may hold.</summary>
    public int Prefetch => Volatile.Read(ref _prefetch);

    /// <summary>The topic the group consumes.</summary>
    public string Topic => _group.Topic.Name;

    /// <summary>The group's name.</summary>
    public string Group => _group.Name;

    /// <summary>
    /// Hands up to <paramref name="max"/> waiting deliveries to <paramref name="handler"/>; returns how many (0 once the
    /// member has left or its broker is closed). The messages are copies owned by the group, so a handler may read them
    /// while the broker is being disposed. A delivery counts as an attempt (toward <see cref="Message.DeliveryCount"/>
    /// and MaxDeliveries) once it is passed to the handler, also when the handler throws: it received the message (the
    /// exception propagates; deliveries not yet passed stay queued). A caller that could not pass a delivery on (the
    /// server: not written to the connection) returns it with <see cref="GiveBack(long, int)"/>.
    /// </summary>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="max"/> is below 1 (it would take nothing, and its 0
    /// would read as "nothing waiting").</exception>
    public int Fetch<THandler>(int max, ref THandler handler)
        where THandler : IMessageHandler
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(max, 1);
        if (Volatile.Read(ref _closed) != 0)
        {
            return 0;
        }

        var n = 0;
        while (n < max && _queue.TryDequeue(out var d))
        {
            try
            {
                // Skip a delivery that timed out while it waited here and has gone to another member. From here the
                // delivery counts as received (the server's handler writes it to the connection): one still queued when
                // the member leaves goes back with its delivery count restored (WorkQueueState.RemoveMember).
                if (_group.TryHandOver(this, d))
                {
                    handler.OnMessage(d.Message.View(_group.Topic, d.DeliveryCount));
                    n++;
                }
            }
            finally
            {
                _group.Release(d.Message);
            }
        }

        return n;
    }

    /// <summary>
    /// Lets this member hold <paramref name="credit"/> more unacked messages (the protocol's CREDIT on a membership).
    /// The prefetch saturates at <see cref="int.MaxValue"/> (in effect unlimited: the group never has more than its
    /// read-ahead window, 32,768 messages, outstanding).
    /// </summary>
    /// <exception cref="BrokerException"><see cref="BrokerErrorCode.InvalidArgument"/> when <paramref name="credit"/> is not positive.</exception>
    public void AddPrefetch(int credit)
    {
        if (credit < 1)
        {
            throw new BrokerException(BrokerErrorCode.InvalidArgument, "credit must be at least 1");
        }

        ObjectDisposedException.ThrowIf(Volatile.Read(ref _closed) != 0, this);
        var current = Volatile.Read(ref _prefetch);
        while (true)
        {
            var raised = (int)Math.Min(int.MaxValue, (long)current + credit);
            var seen = Interlocked.CompareExchange(ref _prefetch, raised, current);
            if (seen == current)
            {
                break;
            }

            current = seen;
        }

        _group.AddPrefetch(this, credit);
    }

    /// <summary>Completes when deliveries may be waiting (or the member was closed).</summary>
    public ValueTask WaitAsync() => _signal.WaitAsync();

    /// <summary>
    /// Deliveries as owned copies until cancelled or closed; ack or nack each. Fetches up to <see cref="Prefetch"/> at a
    /// time, and checks before each message: once the member has left (<see cref="Dispose"/>, <see cref="Abandon"/>, the
    /// broker closing) it gives nothing more, and once <paramref name="cancellationToken"/> is cancelled it ends with
    /// <see cref="OperationCanceledException"/>. A loop that leaves in the middle of a batch (break, an exception, a
    /// cancelled token) gives the deliveries it did not give out back to the group at once (<see cref="GiveBack"/>: no
    /// attempt used), so another member gets them now rather than after their visibility timeout.
    /// </summary>
    public async IAsyncEnumerable<Message> ReadAllAsync([EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        using var registration = cancellationToken.Register(static s => ((AsyncSignal)s!).Set(), _signal);
        var items = new List<Message>(Math.Min(Prefetch, 256)); // a prefetch may be int.MaxValue: grow with what comes
        var collector = new Collector(items);
        var given = 0;
        try
        {
            while (Volatile.Read(ref _closed) == 0)
            {
                cancellationToken.ThrowIfCancellationRequested();
                items.Clear();
                given = 0;
                if (Fetch(Math.Max(1, Prefetch), ref collector) == 0) // JoinGroup's prefetch argument may be 0: the group then queues none
                {
                    await _signal.WaitAsync().ConfigureAwait(false);
                    continue;
                }

                foreach (var m in items)
                {
                    // Before each message, not only between batches: a member that left gave its deliveries back to the
                    // group, which hands them to another member at once; giving the rest of the batch out after the
                    // leave had two consumers work on the same messages.
                    if (Volatile.Read(ref _closed) != 0)
                    {
                        yield break;
                    }

                    cancellationToken.ThrowIfCancellationRequested();
                    given++;
                    yield return m;
                }
            }
        }
        finally
        {
            // The rest of a batch the loop left: fetched, never given to the consumer (false once the member has left:
            // the leave gave them back already).
            for (var i = given; i < items.Count; i++)
            {
                GiveBack(items[i].Offset, items[i].DeliveryCount);
            }
        }
    }

    /// <summary>
    /// Acknowledges a delivery: done for the group. False if it is no longer this member's (timed out), the member has
    /// left (<see cref="Dispose"/>, or <see cref="Abandon"/>, which acts as a crash: a crashed consumer acks nothing), or
    /// the broker is closed (nothing is recorded: the message is delivered again after a restart).
    /// </summary>
    public bool Ack(long offset, int deliveryCount) =>
        Volatile.Read(ref _closed) == 0 && _group.Ack(this, offset, deliveryCount) == WorkQueueOutcome.Acked;

    /// <summary>Acknowledges a delivered message.</summary>
    public bool Ack(Message message) => Ack(message.Offset, message.DeliveryCount);

    /// <summary>
    /// Returns a delivery this member fetched but could not pass on to whoever consumes it (the server: a message too
    /// large for the client's frame limit, or one it failed to write to the connection) to the group at once, as if it
    /// had not been made: its delivery count is restored, so unlike <see cref="Nack(long, int, bool, TimeSpan, string?)"/>
    /// it uses up no attempt. A consumer that saw the message should nack it instead. False when the delivery is no
    /// longer this member's (acked, timed out) or the broker is closed.
    /// </summary>
    public bool GiveBack(long offset, int deliveryCount) => _group.GiveBack(this, offset, deliveryCount);

    /// <summary>
    /// Rejects a delivery: with <paramref name="requeue"/> it is redelivered (after <paramref name="delay"/>) unless it
    /// has used up its deliveries; without, it goes to the dead-letter topic now with <paramref name="error"/>.
    /// <see cref="WorkQueueOutcome.UnknownDelivery"/> when the delivery is no longer this member's, the member has left,
    /// or the broker is closed.
    /// </summary>
    /// <exception cref="ArgumentException"><paramref name="error"/> is not valid UTF-16 text (a lone surrogate, which the
    /// dead letter's <c>fb-dlq-error</c> header could only carry as U+FFFD); nothing is done.</exception>
    public WorkQueueOutcome Nack(long offset, int deliveryCount, bool requeue = true, TimeSpan delay = default, string? error = null)
    {
        Utf8Text.EnsureValid(error, nameof(error));
        return Volatile.Read(ref _closed) != 0 ? WorkQueueOutcome.UnknownDelivery : _group.Nack(this, offset, deliveryCount, requeue, delay, error);
    }

    /// <summary>Rejects a delivered message.</summary>
    /// <exception cref="ArgumentException">As for <see cref="Nack(long, int, bool, TimeSpan, string?)"/>.</exception>
    public WorkQueueOutcome Nack(Message message, bool requeue = true, TimeSpan delay = default, string? error = null) =>
        Nack(message.Offset, message.DeliveryCount, requeue, delay, error);

    /// <summary>Leaves as if crashed: unacked messages are redelivered only after their visibility timeout (those never fetched at once, not counted).</summary>
    public void Abandon()
    {
        if (Interlocked.Exchange(ref _closed, 1) == 0)
        {
            _group.Leave(this, requeueNow: false);
            _signal.Set();
        }
    }

    /// <summary>Leaves the group; unacked messages go back to it at once (those never fetched not counted as a delivery).</summary>
    public void Dispose()
    {
        if (Interlocked.Exchange(ref _closed, 1) == 0)
        {
            _group.Leave(this, requeueNow: true);
            _signal.Set();
        }
    }

    internal void Enqueue(MemberDelivery delivery)
    {
        _queue.Enqueue(delivery);
        _signal.Set();
    }

    internal void DrainQueue()
    {
        while (_queue.TryDequeue(out var d))
        {
            _group.Release(d.Message);
        }
    }

    internal void CloseFromGroup()
    {
        Volatile.Write(ref _closed, 1);
        DrainQueue();
        _signal.Set();
    }

    private readonly struct Collector(List<Message> items) : IMessageHandler
    {
        public void OnMessage(scoped in MessageView message) => items.Add(message.ToMessage());
    }
}
