using FastBroker.Engine;
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
            TopicName.EnsureValid(name, "durable subscription", TopicName.MaxStateNameLength);
            broker.ClaimDurableName(name);
            try
            {
                var path = Path.Combine(broker.Options.DataDirectory, "subscriptions", name + ".pos");
                _positions = PositionStore.OpenDurable(path, name, options.Start, broker.StateFlusher);
                if (_positions.WasBlank)
                {
                    broker.LogBlankStateFile($"subscription '{name}': its position file {path} held no state (empty, zeros, or cut short before its positions end: lost to a power loss?): its position in each topic it matches is now the oldest message kept, so a start from its committed position resumes there, not at a fallback; messages it had committed are delivered again");
                }

                if (_positions.DescribePadding(path) is { } padded)
                {
                    broker.Log($"subscription '{name}': its {padded}");
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
            CheckPositionFile(closing: true); // the last chance to keep what it committed since a removal
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

    internal SubscriptionSnapshot Snapshot() => new(Pattern.Text, Options.DurableName, Delivered, Lag, Expired, Filtered, Missed, Positions)
    {
        TransientCopyBytes = Volatile.Read(ref _cursors).Sum(c => c.CopyBytes),
    };

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
}
