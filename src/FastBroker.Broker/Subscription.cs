using System.Runtime.CompilerServices;
using FastBroker.Engine;
using FastBroker.Filtering;
using FastBroker.Threading;

namespace FastBroker;

/// <summary>
/// A fan-out subscription: its own position in every topic its pattern matches, at its own pace. Persistent
/// topics are read zero-copy from the journal, so a slow subscription is a cursor behind in the file: it never
/// holds producers back and never grows memory. Pull with <see cref="Fetch{THandler}(int, ref THandler)"/>, push with
/// <see cref="ConsumeAsync{THandler}"/> or <see cref="ReadAllAsync"/>. One consumer at a time per subscription.
/// An inline subscription (<see cref="Broker.SubscribeInline{THandler}"/>) has its handler called by the broker instead.
/// </summary>
public sealed partial class Subscription : IDisposable
{
    private readonly Broker _broker;
    private readonly object _gate = new();
    private readonly AsyncSignal _signal = new();
    private readonly PositionStore? _positions;
    private readonly (byte[] Name, byte[] Value)[] _filters;
    private readonly Action<TopicState>? _onTopicCreated;
    private readonly InlineDelivery? _inline;
    private readonly object _deliverGate = new();
    private bool _delivering;
    private bool _releaseAfterDelivery;
    private Exception? _fault;
    private TopicCursor[] _cursors = [];
    private int _nextCursor;
    private long _delivered;
    private long _expired;
    private long _filtered;
    private long _missed;
    private int _disposed;
    private int _fetching; // Fetch calls in progress (FetchGuarded)

    internal Subscription(Broker broker, TopicPattern pattern, SubscriptionOptions options, Func<Subscription, InlineDelivery>? inline = null)
    {
        if (options.BatchSize < 1)
        {
            // 0 made every round of ReadAllAsync, ConsumeAsync and an inline delivery fetch nothing: silence, for ever.
            throw new BrokerException(BrokerErrorCode.InvalidArgument, $"SubscriptionOptions.BatchSize must be at least 1, not {options.BatchSize}");
        }

        _broker = broker;
        _inline = inline?.Invoke(this);
        Pattern = pattern;
        Options = options;
        _filters = EncodeFilters(options.HeaderFilters);
        if (options.DurableName is { } name)
        {
            TopicName.EnsureValid(name, "durable subscription");
            broker.ClaimDurableName(name);
            try
            {
                var path = Path.Combine(broker.Options.DataDirectory, "subscriptions", name + ".pos");
                _positions = PositionStore.OpenDurable(path, name, options.Start, broker.StateFlusher);
                if (_positions.WasBlank)
                {
                    broker.Log($"subscription '{name}': its position file {path} held no state (empty, zeros, or cut short before its positions end: lost to a power loss?): its position in each topic it matches is now the oldest message kept, so a start from its committed position resumes there, not at a fallback; messages it had committed are delivered again");
                }
            }
            catch
            {
                broker.ReleaseDurableName(name);
                throw;
            }
        }
        else if (options.Start.Kind == StartKind.Committed)
        {
            throw new BrokerException(BrokerErrorCode.InvalidArgument, "only a durable subscription (with a DurableName) can start from its committed position");
        }

        try
        {
            if (pattern.HasWildcards)
            {
                _onTopicCreated = t =>
                {
                    if (Pattern.Matches(t.Name))
                    {
                        Attach(t, topicIsNew: true);
                    }
                };
                foreach (var t in broker.Topics.SubscribeToCreations(_onTopicCreated))
                {
                    if (pattern.Matches(t.Name))
                    {
                        Attach(t, topicIsNew: false);
                    }
                }
            }
            else
            {
                Attach(broker.Topics.GetForUse(pattern.Text), topicIsNew: false);
            }
        }
        catch
        {
            Dispose();
            throw;
        }
    }

    /// <summary>The topic pattern.</summary>
    public TopicPattern Pattern { get; }

    /// <summary>The options it was created with.</summary>
    public SubscriptionOptions Options { get; }

    /// <summary>Messages handed to the consumer.</summary>
    public long Delivered => Volatile.Read(ref _delivered);

    /// <summary>Messages skipped because their TTL had passed.</summary>
    public long Expired => Volatile.Read(ref _expired);

    /// <summary>Messages skipped by the header filters.</summary>
    public long Filtered => Volatile.Read(ref _filtered);

    /// <summary>
    /// Messages lost: of a transient topic by falling more than a ring behind, of a persistent one because retention
    /// deleted them before this subscription read them; also those between a start it asked for (a committed position,
    /// <see cref="StartPosition.AtOffset"/>) and the oldest message kept. A non-durable subscription does not hold retention back (only
    /// a durable one's committed position does), so a paused one resumes at the topic's tail and counts the rest here.
    /// </summary>
    public long Missed => Volatile.Read(ref _missed);

    /// <summary>True when the broker calls this subscription's handler (<see cref="Broker.SubscribeInline{THandler}"/>).</summary>
    public bool IsInline => _inline is not null;

    /// <summary>
    /// What an inline handler threw. Delivery stopped there; the broker is unaffected. Dispose the subscription and
    /// subscribe again (a durable one resumes at its committed position).
    /// </summary>
    public Exception? Fault => Volatile.Read(ref _fault);

    /// <summary>Total of head − position over the matched topics.</summary>
    public long Lag => Volatile.Read(ref _cursors).Sum(c => Math.Max(0, c.Topic.Head - c.NextOffset));

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
            Commit();
        }

        return sink.Delivered;
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
    /// with <see cref="OperationCanceledException"/>. A loop that leaves early (break, exception, cancellation, disposal
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
                    // Before each message, not only between batches: a cancelled loop gets nothing more (the finally
                    // gives the rest of the batch back). One read of the token's state per message.
                    cancellationToken.ThrowIfCancellationRequested();
                    given++;
                    yield return m;
                }

                // The loop asked for the next message: it is done with this batch (and with what the filters skipped).
                if (Options.AutoCommit && Volatile.Read(ref _disposed) == 0)
                {
                    Commit();
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
        Interlocked.Increment(ref _fetching); // as a fetch: a Dispose meanwhile leaves the cursors to the finally below
        try
        {
            if (Volatile.Read(ref _disposed) != 0)
            {
                return;
            }

            Interlocked.Add(ref _delivered, given - items.Count);
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

    /// <summary>The committed position in a topic, if any (durable subscriptions).</summary>
    /// <exception cref="ObjectDisposedException">The subscription (or its broker) is closed.</exception>
    public long? CommittedOffset(string topic)
    {
        ThrowIfDisposed();
        return _positions?.Get(topic);
    }

    /// <summary>Positions by topic: the next offset this subscription will read.</summary>
    public IReadOnlyDictionary<string, long> Positions => Volatile.Read(ref _cursors).ToDictionary(c => c.Topic.Name, c => c.NextOffset, StringComparer.Ordinal);

    /// <summary>Stops the subscription and releases its readers (durable positions stay as last committed).</summary>
    public void Dispose()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
        {
            return;
        }

        if (_onTopicCreated is not null)
        {
            _broker.Topics.RemoveOnCreated(_onTopicCreated);
        }

        lock (_gate)
        {
            foreach (var c in _cursors)
            {
                c.Topic.RemoveListener(_signal);
                if (_inline is not null)
                {
                    c.Topic.RemoveInline(_inline);
                }
            }
        }

        if (_inline is null)
        {
            // A fetch in progress (another thread's, or this is its handler) may hold spans into a cursor's segment:
            // then the last fetch out releases the cursors (FetchGuarded). Read after _disposed was set (a full fence).
            if (Volatile.Read(ref _fetching) == 0)
            {
                ReleaseCursors();
            }
        }
        else
        {
            // A delivery may be reading the cursors right now: wait for it, unless this is its own handler
            // disposing the subscription, in which case the delivery releases them when it unwinds.
            lock (_deliverGate)
            {
                if (_delivering)
                {
                    _releaseAfterDelivery = true;
                }
                else
                {
                    ReleaseCursors();
                }
            }
        }

        _signal.Set();
        _broker.Forget(this); // first: the retention floor reads the positions of every subscription the broker knows
        if (_positions is not null)
        {
            _positions.Dispose();
            _broker.ReleaseDurableName(Options.DurableName!); // last: the next one to open the name is the file's only writer
        }
    }

    internal void CloseFromBroker() => Dispose();

    private void ReleaseCursors()
    {
        lock (_gate)
        {
            foreach (var c in _cursors)
            {
                c.Dispose();
            }

            _cursors = [];
        }
    }

    internal SubscriptionSnapshot Snapshot() => new(Pattern.Text, Options.DurableName, Delivered, Lag, Expired, Filtered, Missed, Positions);

    internal IEnumerable<(string Topic, long Committed)> CommittedPositions()
    {
        if (_positions is null)
        {
            yield break;
        }

        foreach (var kv in _positions.All())
        {
            yield return (kv.Key, kv.Value);
        }
    }

    private void Attach(TopicState topic, bool topicIsNew)
    {
        var committed = _positions?.Get(topic.Name);
        if (committed is null && !topicIsNew && _positions is { WasBlank: true })
        {
            // Its positions were lost: nothing says which messages it had processed, so it resumes at the oldest kept
            // (delivering again, never skipping), and commits that at once, so a restart before its first commit does too.
            committed = topic.Tail;
            _positions.Commit(topic.Name, committed.Value);
            _positions.RequestSync();
        }

        var cursor = new TopicCursor(topic, Options.Start, committed, topicIsNew);
        lock (_gate)
        {
            if (Volatile.Read(ref _disposed) != 0)
            {
                cursor.Dispose();
                return;
            }

            _cursors = [.. _cursors, cursor];
            topic.AddListener(_signal);
            if (_inline is not null)
            {
                topic.AddInline(_inline);
            }
        }

        if (_inline is not null)
        {
            // What is already readable (a start before the head) is delivered off the caller's thread; live messages
            // then arrive on the dispatcher's. The two never overlap (InlineDelivery).
            ThreadPool.UnsafeQueueUserWorkItem(static d => d.Deliver(), _inline, preferLocal: false);
        }
        else
        {
            _signal.Set();
        }
    }

    private void ThrowIfDisposed()
    {
        if (Volatile.Read(ref _disposed) != 0)
        {
            throw new ObjectDisposedException(nameof(Subscription));
        }
    }

    /// <summary>
    /// The filters as UTF-8 (name, value) pairs, one per header name. Each is checked by the rules the server and the
    /// .NET client share (<see cref="HeaderFilterRules"/>: text that is not valid UTF-16, a filter no message can carry,
    /// one on <c>fb-expires</c> or <c>fb-producer</c>, two values for one name, which an
    /// <see cref="IReadOnlyDictionary{TKey, TValue}"/> may list), refused in the same words. A filter takes one value per
    /// name, as the wire protocol's SUBSCRIBE does (docs/protocol.md): two values for one name are refused rather than
    /// read as an AND that only a message repeating the header passes; the same value twice is one filter.
    /// </summary>
    private static (byte[] Name, byte[] Value)[] EncodeFilters(IReadOnlyDictionary<string, string>? filters)
    {
        if (filters is null || filters.Count == 0)
        {
            return [];
        }

        var encoded = new List<(byte[] Name, byte[] Value)>(filters.Count);
        foreach (var (name, value) in filters)
        {
            if (HeaderFilterRules.TryAdd(encoded, name, value) is { } refused)
            {
                throw new BrokerException(BrokerErrorCode.InvalidArgument, refused);
            }
        }

        return [.. encoded];
    }

    private bool Passes(scoped in MessageView m, ushort flags, TopicState topic)
    {
        if ((flags & Broker.HasExpiryFlag) != 0
            && Engine.ReservedHeaders.TryGetBrokerWritten(m.Headers, Broker.ExpiresHeaderName, out var exp)
            && exp.Length == 8
            && System.Buffers.Binary.BinaryPrimitives.ReadInt64LittleEndian(exp) <= DateTimeOffset.UtcNow.ToUnixTimeMilliseconds())
        {
            _expired++;
            topic.CountExpired(m.Offset);
            return false;
        }

        foreach (var (name, value) in _filters)
        {
            if (!HasHeader(m.Headers, name, value))
            {
                _filtered++;
                return false;
            }
        }

        return true;
    }

    /// <summary>
    /// True when any entry of the header block is <paramref name="name"/> = <paramref name="value"/>: a name may repeat,
    /// and the filter asks whether the message has that value (docs/protocol.md, SUBSCRIBE), not whether its first
    /// entry of the name does. Allocation-free.
    /// </summary>
    private static bool HasHeader(ReadOnlySpan<byte> headers, ReadOnlySpan<byte> name, ReadOnlySpan<byte> value)
    {
        var reader = new Journal.RecordHeaderReader(headers);
        while (reader.TryReadNext(out var n, out var v))
        {
            if (n.SequenceEqual(name) && v.SequenceEqual(value))
            {
                return true;
            }
        }

        return false;
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

    /// <summary>An inline subscription's handler and its delivery loop.</summary>
    internal sealed class Inline<THandler>(Subscription owner, THandler handler) : InlineDelivery
        where THandler : IMessageHandler
    {
        private THandler _handler = handler;

        protected override void Drain()
        {
            lock (owner._deliverGate)
            {
                if (Volatile.Read(ref owner._disposed) != 0 || owner._fault is not null)
                {
                    return;
                }

                owner._delivering = true;
                try
                {
                    var batch = owner.Options.BatchSize;
                    // Until nothing is left to read (a batch that the filters emptied is not the end).
                    while (Volatile.Read(ref owner._disposed) == 0)
                    {
                        owner.FetchCore(batch, ref _handler, out var read, autoCommit: true);
                        if (read == 0)
                        {
                            break;
                        }
                    }
                }
                catch (Exception ex)
                {
                    // The handler's failure is the subscription's, never the pipeline's: stop delivering and say why.
                    Volatile.Write(ref owner._fault, ex);
                    owner._signal.Set();
                }
                finally
                {
                    owner._delivering = false;
                    if (owner._releaseAfterDelivery)
                    {
                        owner._releaseAfterDelivery = false;
                        owner.ReleaseCursors();
                    }
                }
            }
        }
    }

    private readonly struct Collector(List<Message> items) : IMessageHandler
    {
        public List<Message> Items { get; } = items;

        public void OnMessage(scoped in MessageView message) => Items.Add(message.ToMessage());
    }
}
