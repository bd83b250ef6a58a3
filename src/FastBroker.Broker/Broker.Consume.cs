using FastBroker.Engine;

namespace FastBroker;

/// <summary>Subscriptions and work-queue groups.</summary>
public sealed partial class Broker
{
    /// <summary>The longest finite <see cref="RequestAsync"/> timeout: what a cancellation timer takes (2³² − 2 ms, about 49.7 days).</summary>
    private static readonly TimeSpan s_maxRequestTimeout = TimeSpan.FromMilliseconds(uint.MaxValue - 1.0);

    /// <summary>
    /// Subscribes to every topic matching <paramref name="pattern"/> (<c>orders.*</c> one level, <c>orders.&gt;</c>
    /// the rest; a plain name is one topic, created on first use when auto-creation is on).
    /// </summary>
    /// <exception cref="BrokerException">Invalid pattern, unknown topic (auto-creation off), invalid options;
    /// <see cref="BrokerErrorCode.DurableNameInUse"/>: an open subscription has the same <see cref="SubscriptionOptions.DurableName"/>;
    /// <see cref="BrokerErrorCode.StorageError"/>: the durable name's position file is not a position file (a wrong magic:
    /// damaged or foreign; unreadable, also for an I/O error of the device: EIO), or cannot be opened as it is. The
    /// message names the file, the reason and what to do (repair or remove the file); the file is left as it is.
    /// <see cref="BrokerErrorCode.ResourceExhausted"/>: the position file, or the journal of a topic the call creates,
    /// cannot be opened now (out of descriptors, memory or disk space): nothing was changed, the same call may succeed
    /// later.</exception>
    public Subscription Subscribe(string pattern, SubscriptionOptions? options = null)
    {
        ThrowIfClosed();
        var parsed = TopicPattern.Parse(pattern);
        var subscription = new Subscription(this, parsed, options ?? SubscriptionOptions.Default);
        lock (_gate)
        {
            _subscriptions.Add(subscription);
            _subscriptionTotals.Opened(subscription.Pattern.Text, subscription.Options.DurableName);
        }

        if (subscription.Options.DurableName is not null)
        {
            StartPositionFileChecks();
        }

        return subscription;
    }

    /// <summary>
    /// Subscribes with <paramref name="handler"/> called by the broker itself, on the pipeline thread right after each
    /// batch is committed (for fsynced topics, once it is durable): the LMAX way, with no hand-off to a consumer
    /// thread and no wake-up, so the lowest publish→delivery latency and no consumer thread competing for a core.
    /// Messages already readable at the start position are delivered first, from a thread-pool thread; calls never
    /// overlap and come in order per topic.
    /// </summary>
    /// <remarks>
    /// The handler holds up every topic's publishers while it runs: it must be quick and must not block (hand slow
    /// work to another thread). In particular it must not wait for a confirmation, and a publish from it must be a
    /// <c>TryPublish</c> that accepts false: the ring it would wait on drains only
    /// once the handler returns. An exception it throws stops this subscription only (<see cref="Subscription.Fault"/>).
    /// <see cref="Subscription.Fetch{THandler}(int, ref THandler)"/> and the push methods are refused on an inline subscription.
    /// </remarks>
    /// <exception cref="BrokerException">As for <see cref="Subscribe"/>.</exception>
    public Subscription SubscribeInline<THandler>(string pattern, THandler handler, SubscriptionOptions? options = null)
        where THandler : IMessageHandler
    {
        ArgumentNullException.ThrowIfNull(handler);
        ThrowIfClosed();
        var parsed = TopicPattern.Parse(pattern);
        var subscription = new Subscription(this, parsed, options ?? SubscriptionOptions.Default, s => new Subscription.Inline<THandler>(s, handler));
        lock (_gate)
        {
            _subscriptions.Add(subscription);
            _subscriptionTotals.Opened(subscription.Pattern.Text, subscription.Options.DurableName);
        }

        if (subscription.Options.DurableName is not null)
        {
            StartPositionFileChecks();
        }

        return subscription;
    }

    /// <summary>Joins (creating it on first use) the work-queue group <paramref name="group"/> over <paramref name="topic"/>.</summary>
    /// <exception cref="BrokerException">Invalid names, unknown topic (auto-creation off), transient topic, invalid options;
    /// <see cref="BrokerErrorCode.StorageError"/>: the group's state file is not a group's (a wrong magic: damaged or
    /// foreign; unreadable, also for an I/O error of the device: EIO), or cannot be opened as it is. The message names
    /// the file, the reason and what to do (repair or remove the file); the file is left as it is.
    /// <see cref="BrokerErrorCode.ResourceExhausted"/>: the state file cannot be opened now (out of descriptors, memory
    /// or disk space): nothing was changed, the same call may succeed later.</exception>
    public WorkQueueMember JoinGroup(string topic, string group, GroupOptions? options = null, int? prefetch = null)
    {
        ThrowIfClosed();
        TopicName.EnsureValid(group, "group", TopicName.MaxStateNameLength);
        options ??= GroupOptions.Default;
        if (options.Prefetch < 1 || options.MaxDeliveries < 1 || options.VisibilityTimeout <= TimeSpan.Zero)
        {
            throw new BrokerException(BrokerErrorCode.InvalidArgument, "prefetch, max deliveries and visibility timeout must be positive");
        }

        if (prefetch < 1)
        {
            // Before the group exists: refused only at the member's join, it left a new group and its state file behind.
            throw new BrokerException(BrokerErrorCode.InvalidArgument, $"prefetch must be at least 1 (got {prefetch})");
        }

        var t = _topics.GetForUse(topic);
        WorkQueueGroup g;
        lock (_gate)
        {
            if (!_groups.TryGetValue((t.Name, group), out g!))
            {
                foreach (var (key, _) in _groups)
                {
                    if (key.Group == group)
                    {
                        throw new BrokerException(BrokerErrorCode.TopicConflict, $"group '{group}' already consumes topic '{key.Topic}'; a group name belongs to one topic");
                    }
                }

                // Also a group that only has its state on disk (no member since the broker opened): joining the name over
                // another topic made a second group of that name, and whichever loaded first after the next restart
                // locked the other out (its unacked work stranded, its floor holding retention). A group with state over
                // this topic too (two such, made before this check) is still joined here, as before.
                foreach (var (key, _) in _dormantGroupFloors)
                {
                    if (key.Group == group && key.Topic != t.Name && !_dormantGroupFloors.ContainsKey((t.Name, group)))
                    {
                        throw new BrokerException(BrokerErrorCode.TopicConflict, $"group '{group}' already consumes topic '{key.Topic}' (its state is in that topic's directory); a group name belongs to one topic");
                    }
                }

                g = new WorkQueueGroup(this, t, group, options);
                _groups[(t.Name, group)] = g;
                StartTimer();
            }
        }

        return g.Join(prefetch ?? g.Options.Prefetch);
    }

    /// <summary>
    /// Request-reply: publishes to <paramref name="topic"/> with <c>fb-reply-to</c> and <c>fb-correlation-id</c>
    /// headers and waits for the first message on the reply topic carrying the same correlation id.
    /// </summary>
    /// <exception cref="BrokerException"><see cref="BrokerErrorCode.Timeout"/> when no reply came in time:
    /// <paramref name="timeout"/> bounds the whole request, its publish included (a request whose publish was still
    /// waiting for its confirmation may yet be stored and handled, its reply discarded);
    /// <see cref="BrokerErrorCode.InvalidArgument"/> (nothing sent) for a negative <paramref name="timeout"/> other than
    /// <see cref="Timeout.InfiniteTimeSpan"/>, or a finite one over 2³² − 2 ms (about 49.7 days, the most a timer takes).</exception>
    public async Task<Message> RequestAsync(string topic, ReadOnlyMemory<byte> payload, TimeSpan timeout, string? replyTopic = null, CancellationToken cancellationToken = default)
    {
        ThrowIfClosed();
        if (timeout != Timeout.InfiniteTimeSpan && (timeout < TimeSpan.Zero || timeout > s_maxRequestTimeout))
        {
            // Checked before sending: the timer refused it only after the request was published (a service then
            // worked for a caller that had already failed), and a sub-millisecond negative one timed out at once.
            throw new BrokerException(BrokerErrorCode.InvalidArgument, $"a request timeout is 0 to {s_maxRequestTimeout} or Timeout.InfiniteTimeSpan, not {timeout}");
        }

        var correlation = Guid.NewGuid().ToString("N");
        replyTopic ??= _replyTopic; // one transient reply topic per broker; replies are matched by correlation id

        // The timeout bounds the whole request, its publish included: a publish waits for room in a full ring, for an
        // fsynced topic's group commit or for a standby's ack, and timing only the wait for the reply let a request
        // outlast its timeout by all of that.
        using var expiry = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        expiry.CancelAfter(timeout);
        using var replies = Subscribe(replyTopic, new SubscriptionOptions { Start = StartPosition.Latest, HeaderFilters = new Dictionary<string, string> { ["fb-correlation-id"] = correlation } });
        var headers = new MessageHeaders().Add("fb-reply-to", replyTopic).Add("fb-correlation-id", correlation);
        var published = false;
        try
        {
            // The token stops a wait for room (nothing stored); a request already in the ring is stored and handed to
            // the service whatever happens here, and its reply is left for nobody.
            await PublishAsync(topic, payload, headers: headers, cancellationToken: expiry.Token).AsTask().WaitAsync(expiry.Token).ConfigureAwait(false);
            published = true;
            await foreach (var m in replies.ReadAllAsync(expiry.Token).ConfigureAwait(false))
            {
                return m;
            }
        }
        catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested && expiry.IsCancellationRequested)
        {
        }

        cancellationToken.ThrowIfCancellationRequested();
        throw new BrokerException(BrokerErrorCode.Timeout, published
            ? $"no reply on '{replyTopic}' within {timeout.TotalMilliseconds:0} ms"
            : $"the request to '{topic}' was not confirmed within {timeout.TotalMilliseconds:0} ms (it may still be stored and handled; its reply is then discarded)");
    }

    /// <summary>Publishes a reply to a request message (to its <c>fb-reply-to</c> topic, with its correlation id).</summary>
    public ValueTask<long> ReplyAsync(Message request, ReadOnlyMemory<byte> payload, CancellationToken cancellationToken = default)
    {
        var replyTo = request.HeaderText("fb-reply-to") ?? throw new BrokerException(BrokerErrorCode.InvalidArgument, "the request has no fb-reply-to header");
        var correlation = request.HeaderText("fb-correlation-id") ?? "";
        return PublishAsync(replyTo, payload, headers: new MessageHeaders().Add("fb-correlation-id", correlation), cancellationToken: cancellationToken);
    }

    /// <summary>
    /// The oldest offset of <paramref name="topic"/> that retention must keep: the lowest committed position of an open
    /// durable subscription reading it, or the ack floor of a work-queue group on it, joined since the broker opened or
    /// not, or, while the topic holds an idempotent record at or after the capture point of the last
    /// <c>producers.state</c> written, that point (a capture is then asked for: <see cref="ProducerCheckpoint.RetentionFloor"/>;
    /// the records from the point on are what a restart after a crash rescans to know the producers the file does not
    /// name) (long.MaxValue: none). Asked by
    /// the topic's journal at each retention pass, so that a closed subscription or an advanced group never holds
    /// retention back with a stale floor.
    /// </summary>
    internal long RetentionFloorOf(string topic)
    {
        var floor = long.MaxValue;
        lock (_gate)
        {
            foreach (var s in _subscriptions)
            {
                foreach (var (t, committed) in s.CommittedPositions())
                {
                    if (t == topic)
                    {
                        floor = Math.Min(floor, committed);
                    }
                }
            }

            foreach (var g in _groups.Values)
            {
                if (g.Topic.Name == topic)
                {
                    floor = Math.Min(floor, g.PersistedFloor);
                }
            }

            foreach (var (key, dormant) in _dormantGroupFloors)
            {
                if (key.Topic == topic && !_groups.ContainsKey(key))
                {
                    floor = Math.Min(floor, dormant);
                }
            }
        }

        if (_topics.TryGet(topic, out var state))
        {
            // Null while the broker opens (a journal's pass may come before the open's own capture): everything kept.
            floor = Math.Min(floor, _producerCheckpoint?.RetentionFloor(state) ?? long.MinValue);
        }

        return floor;
    }
}
