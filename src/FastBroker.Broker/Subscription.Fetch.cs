using System.Runtime.CompilerServices;
using FastBroker.Engine;
using FastBroker.Threading;

namespace FastBroker;

// Consuming: fetching (pull), waiting, ConsumeAsync and ReadAllAsync (push), and giving back what a loop left.
public sealed partial class Subscription
{
    /// <summary>
    /// Hands up to <paramref name="max"/> available messages to <paramref name="handler"/> and returns how many were
    /// delivered; 0 when nothing is available now. Allocation-free with a struct handler. The spans a message view
    /// holds stay valid until the handler returns, even if the subscription or its broker is disposed meanwhile (the
    /// fetch then finishes its batch without committing, and the next one throws). An exception from the handler
    /// propagates; the messages before it count as delivered, the one it threw on is delivered again by the next fetch,
    /// and the failed fetch commits nothing.
    /// </summary>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="max"/> is below 1 (it would examine nothing, and its 0
    /// would read as "nothing available").</exception>
    /// <exception cref="InvalidOperationException">The subscription is inline: the broker delivers its messages.</exception>
    /// <exception cref="ObjectDisposedException">The subscription (or its broker) is closed.</exception>
    public int Fetch<THandler>(int max, ref THandler handler)
        where THandler : IMessageHandler => FetchGuarded(max, ref handler, out _, autoCommit: true);

    /// <summary>
    /// <see cref="Fetch{THandler}(int, ref THandler)"/>, also telling how many records were examined, including the ones
    /// a header filter or a TTL kept from <paramref name="handler"/>. Only <paramref name="examined"/> = 0 means that
    /// nothing is available now: a batch that was all filtered out returns 0 delivered, and more may follow at once.
    /// </summary>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="max"/> is below 1 (it would examine nothing, and its 0
    /// would read as "nothing available").</exception>
    /// <exception cref="InvalidOperationException">The subscription is inline: the broker delivers its messages.</exception>
    /// <exception cref="ObjectDisposedException">The subscription (or its broker) is closed.</exception>
    public int Fetch<THandler>(int max, ref THandler handler, out int examined)
        where THandler : IMessageHandler => FetchGuarded(max, ref handler, out examined, autoCommit: true);

    /// <summary>
    /// A fetch counted in <see cref="_fetching"/>, so that a <see cref="Dispose"/> during it (from another thread, from
    /// its own handler, or by the broker closing) leaves the cursors to the last fetch out: a journal segment stays
    /// mapped while a span into it can still be read. Two interlocked operations per call, none per message.
    /// </summary>
    private int FetchGuarded<THandler>(int max, ref THandler handler, out int examined, bool autoCommit)
        where THandler : IMessageHandler
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(max, 1);
        Interlocked.Increment(ref _fetching);
        try
        {
            // After the increment (a full fence): a Dispose either sees this fetch or this fetch sees it.
            ThrowIfDisposed();
            if (_inline is not null)
            {
                throw new InvalidOperationException("an inline subscription is delivered by the broker; it cannot also be fetched from");
            }

            return FetchCore(max, ref handler, out examined, autoCommit);
        }
        finally
        {
            // (An inline subscription's cursors are its delivery's: Dispose and Inline.Drain release them.)
            if (Interlocked.Decrement(ref _fetching) == 0 && Volatile.Read(ref _disposed) != 0 && _inline is null)
            {
                ReleaseCursors();
            }
        }
    }

    /// <summary>Returns how many were delivered; <paramref name="read"/> counts the ones filtered out or expired too.</summary>
    private int FetchCore<THandler>(int max, ref THandler handler, out int read, bool autoCommit)
        where THandler : IMessageHandler
    {
        var cursors = Volatile.Read(ref _cursors);
        var sink = new Sink<THandler>(this, ref handler);
        TopicCursor? cursor = null;
        read = 0;
        try
        {
            for (var i = 0; i < cursors.Length && sink.Delivered < max; i++)
            {
                cursor = cursors[(_nextCursor + i) % cursors.Length];
                sink.Topic = cursor.Topic;
                read += cursor.Read(max - sink.Delivered, ref sink);
            }
        }
        catch when (sink.InHandler && cursor is not null)
        {
            // The handler threw: it has not finished that message, so the next fetch delivers it again (and this one
            // commits nothing). Before, the cursor stayed past it: the message was lost to the subscription, and the
            // next auto-commit committed past it.
            RewindAfterHandlerFailure(cursor, sink.Offset);
            throw;
        }
        catch (BrokerException e) when (e.Code == BrokerErrorCode.DamagedRecord && cursor is not null)
        {
            // The cursor stays before the damaged record (it is never delivered nor committed past), but the next fetch
            // starts at the cursor after it, so the subscription's other topics go on; what this fetch read before the
            // damage is committed as a fetch that returns commits it.
            PassDamagedCursor(cursors, cursor, autoCommit);
            throw;
        }
        finally
        {
            // The messages whose handler returned were delivered, also when a later one throws.
            if (sink.Delivered > 0)
            {
                Interlocked.Add(ref _delivered, sink.Delivered);
            }
        }

        if (cursors.Length > 1)
        {
            _nextCursor = (_nextCursor + 1) % cursors.Length;
        }

        if (autoCommit && Options.AutoCommit && read > 0 && Volatile.Read(ref _disposed) == 0)
        {
            CommitPositions();
        }

        return sink.Delivered;
    }

    /// <summary>Slow path of a damaged record: the next fetch starts after <paramref name="cursor"/>; the reads before it are committed.</summary>
    [MethodImpl(MethodImplOptions.NoInlining)]
    private void PassDamagedCursor(TopicCursor[] cursors, TopicCursor cursor, bool autoCommit)
    {
        _nextCursor = (Array.IndexOf(cursors, cursor) + 1) % cursors.Length;
        if (autoCommit && Options.AutoCommit && Volatile.Read(ref _disposed) == 0)
        {
            CommitPositions();
        }
    }

    /// <summary>Slow path of a handler's exception: its cursor goes back to the message it failed on.</summary>
    [MethodImpl(MethodImplOptions.NoInlining)]
    private static void RewindAfterHandlerFailure(TopicCursor cursor, long offset)
    {
        try
        {
            cursor.Rewind(offset);
        }
        catch (ObjectDisposedException)
        {
            // The broker closed the topic's journal meanwhile: the subscription is closing too; the handler's exception
            // is the one to report.
        }
    }

    /// <summary>Completes when messages may be available (or the subscription was closed).</summary>
    public ValueTask WaitAsync() => _signal.WaitAsync();

    /// <summary>
    /// Blocks until messages may be available, the subscription is closed, or the timeout passes (false). For a
    /// consumer on its own thread: the dispatcher wakes it directly, without a thread-pool hop.
    /// </summary>
    public bool Wait(TimeSpan timeout) => _signal.Wait(timeout);

    /// <summary>Delivers every message to <paramref name="handler"/> until cancelled (push style, no allocation per message).</summary>
    public async Task ConsumeAsync<THandler>(THandler handler, CancellationToken cancellationToken = default)
        where THandler : IMessageHandler
    {
        using var registration = cancellationToken.Register(static s => ((AsyncSignal)s!).Set(), _signal);
        while (!cancellationToken.IsCancellationRequested && Volatile.Read(ref _disposed) == 0)
        {
            Fetch(Options.BatchSize, ref handler, out var examined);
            if (examined == 0)
            {
                await _signal.WaitAsync().ConfigureAwait(false);
            }
        }

        cancellationToken.ThrowIfCancellationRequested();
    }

    /// <summary>
    /// Every message as an owned copy, in order per topic, until cancelled or disposed. Fetches
    /// <see cref="SubscriptionOptions.BatchSize"/> at a time; with <see cref="SubscriptionOptions.AutoCommit"/> a batch is
    /// committed once the loop asks for the message after its last (it is done with all of them), not when it is
    /// fetched. The token is checked before each message: once it is cancelled the loop is given nothing more and ends
    /// with <see cref="OperationCanceledException"/>; so is the subscription: once it is disposed (by the loop's body, by
    /// another thread, by the broker closing) the loop is given nothing more and ends. A loop that leaves early (break, exception, cancellation, disposal
    /// of the enumerator) leaves the subscription right after the last message it was given: the rest of the batch is
    /// read again by the next fetch, and is not committed.
    /// </summary>
    public async IAsyncEnumerable<Message> ReadAllAsync([EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        using var registration = cancellationToken.Register(static s => ((AsyncSignal)s!).Set(), _signal);
        var collector = new Collector(new List<Message>(Options.BatchSize));
        var given = 0;
        try
        {
            while (Volatile.Read(ref _disposed) == 0)
            {
                cancellationToken.ThrowIfCancellationRequested();
                collector.Items.Clear();
                given = 0;
                FetchGuarded(Options.BatchSize, ref collector, out var examined, autoCommit: false);
                if (examined == 0)
                {
                    await _signal.WaitAsync().ConfigureAwait(false);
                    continue;
                }

                foreach (var m in collector.Items)
                {
                    // Before each message, not only between batches: a cancelled loop, or one whose subscription was
                    // disposed meanwhile (by its body, or by another thread), gets nothing more (the finally gives the rest
                    // of the batch back). One read of each per message.
                    if (Volatile.Read(ref _disposed) != 0)
                    {
                        yield break;
                    }

                    cancellationToken.ThrowIfCancellationRequested();
                    given++;
                    yield return m;
                }

                // The loop asked for the next message: it is done with this batch (and with what the filters skipped).
                if (Options.AutoCommit && Volatile.Read(ref _disposed) == 0)
                {
                    CommitPositions();
                }
            }
        }
        finally
        {
            if (given < collector.Items.Count)
            {
                GiveBack(collector.Items, given);
            }
        }
    }

    /// <summary>
    /// <see cref="ReadAllAsync"/> left before giving out its batch from <paramref name="given"/> on: each topic's cursor
    /// goes back to its first message not given, so the next fetch delivers them (before, they were lost to this
    /// subscription, and an auto-commit had already committed past them: a restart skipped them too).
    /// </summary>
    private void GiveBack(List<Message> items, int given)
    {
        Interlocked.Add(ref _delivered, given - items.Count); // also once disposed: they were never given
        Interlocked.Increment(ref _fetching); // as a fetch: a Dispose meanwhile leaves the cursors to the finally below
        try
        {
            if (Volatile.Read(ref _disposed) != 0)
            {
                return;
            }

            foreach (var cursor in Volatile.Read(ref _cursors))
            {
                for (var i = given; i < items.Count; i++)
                {
                    if (items[i].Topic == cursor.Topic.Name)
                    {
                        cursor.Rewind(items[i].Offset); // a topic's messages are in offset order: its first not given
                        break;
                    }
                }
            }
        }
        catch (ObjectDisposedException)
        {
            // The broker closed the topic's journal under us: the subscription is being closed with it.
        }
        finally
        {
            if (Interlocked.Decrement(ref _fetching) == 0 && Volatile.Read(ref _disposed) != 0)
            {
                ReleaseCursors();
            }
        }
    }

    private ref struct Sink<THandler>(Subscription owner, ref THandler handler) : ICursorSink
        where THandler : IMessageHandler
    {
        private ref THandler _handler = ref handler;

        public int Delivered;

        /// <summary>The topic of the cursor being read (its expired counter).</summary>
        public TopicState Topic = null!;

        /// <summary>True while the handler runs: an exception then is the handler's, on the message at <see cref="Offset"/>.</summary>
        public bool InHandler;

        /// <summary>The offset of the message last handed to the handler.</summary>
        public long Offset;

        public void Offer(scoped in MessageView message, ushort flags)
        {
            // An inline handler may dispose its own subscription mid-batch: deliver nothing after that.
            if (owner._inline is not null && Volatile.Read(ref owner._disposed) != 0)
            {
                return;
            }

            if (owner.Passes(message, flags, Topic))
            {
                Offset = message.Offset;
                InHandler = true;
                _handler.OnMessage(message);
                InHandler = false;
                Delivered++;
            }
        }

        public readonly void Missed(long count) => Interlocked.Add(ref owner._missed, count);
    }

    private readonly struct Collector(List<Message> items) : IMessageHandler
    {
        public List<Message> Items { get; } = items;

        public void OnMessage(scoped in MessageView message) => Items.Add(message.ToMessage());
    }
}
