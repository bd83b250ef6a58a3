using System.Runtime.CompilerServices;
using System.Text;
using FastBroker.Client.Internal;
using FastBroker.Protocol;

namespace FastBroker.Client;

/// <summary>Fan-out subscriptions and commits.</summary>
public sealed partial class BrokerClient
{
    /// <summary>
    /// Subscribes and yields the messages of every topic matching <paramref name="pattern"/>, per topic in offset
    /// order; ends (UNSUBSCRIBE) when the enumeration stops. Commit a durable subscription's position with
    /// <see cref="CommitAsync(ClientMessage, CancellationToken)"/>. Reconnects are invisible: after one the stream
    /// continues with the next message, without gaps or repeats (see <see cref="CreateSubscriptionAsync"/>).
    /// </summary>
    /// <exception cref="BrokerClientException">The server refused the subscription (e.g. <see cref="ErrorCode.InvalidName"/>, <see cref="ErrorCode.UnknownTopic"/>), refused its resume after a reconnect for good (e.g. <see cref="ErrorCode.StorageError"/>, see <see cref="CreateSubscriptionAsync"/>) or ended it, the client gave up reconnecting, or a filter the broker refuses (one no message can carry, one that is not valid UTF-16 text, one on fb-expires or fb-producer, two values for one header name) was refused before sending (<see cref="ErrorCode.InvalidArgument"/>, <see cref="SubscribeOptions.Filters"/>).</exception>
    public async IAsyncEnumerable<ClientMessage> SubscribeAsync(string pattern, SubscribeOptions? options = null, [EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        var subscription = await CreateSubscriptionAsync(pattern, options, cancellationToken).ConfigureAwait(false);
        await using (subscription.ConfigureAwait(false))
        {
            await foreach (var message in subscription.ReadAllAsync(cancellationToken).ConfigureAwait(false))
            {
                yield return message;
            }
        }
    }

    /// <summary>
    /// Subscribes (SUBSCRIBE, waits for the OK) and returns the subscription to read, commit and dispose.
    /// </summary>
    /// <remarks>
    /// After a reconnect the client resubscribes by itself: a durable subscription with <see cref="StartKind.Committed"/>
    /// (falling back to Earliest once it has received anything, so nothing published meanwhile is missed), any other
    /// one that has received messages at <see cref="StartKind.Offset"/> = the smallest next offset over its topics, one
    /// of a concrete topic that has received nothing at the offset it started at (so a <see cref="SubscribeStart.Latest"/>
    /// start does not skip what was published while disconnected), and any other with its original start. Messages at
    /// or below the last one received of their topic are dropped, so the application sees each message once, in order.
    /// A wildcard subscription resumed at an offset applies it to every topic, so a matching topic it had never received
    /// from restarts at that offset too. A resume the server refuses for now (<see cref="ErrorCode.Closed"/>,
    /// <see cref="ErrorCode.NotPrimary"/>, <see cref="ErrorCode.Timeout"/>, <see cref="ErrorCode.ResourceExhausted"/>:
    /// the server could not open the position file now, out of descriptors say) is tried again on a new connection; one it
    /// refuses for good (any other code, e.g. <see cref="ErrorCode.StorageError"/>: the durable name's position file is
    /// damaged) ends this subscription with the server's code and reason, which its reader throws after the buffered
    /// messages; the client's other subscriptions go on.
    /// </remarks>
    public async ValueTask<ClientSubscription> CreateSubscriptionAsync(string pattern, SubscribeOptions? options = null, CancellationToken cancellationToken = default)
    {
        options ??= SubscribeOptions.Default;
        if (options.Credit < 1)
        {
            throw new ArgumentOutOfRangeException(nameof(options), options.Credit, "Credit must be at least 1.");
        }

        var filters = Utf8Names.EncodeFilters(options.Filters);
        if (filters.Length > 0 && (Features & ProtocolFeatures.HeaderFilters) == 0)
        {
            ThrowHelper.ThrowNotGranted(ProtocolFeatures.HeaderFilters);
        }

        var state = new SubscriptionState(NextSubscriptionId(), SubscriptionKind.Fanout, pattern, options.Credit)
        {
            Start = options.Start,
            DurableName = options.DurableName,
            DurableUtf8 = options.DurableName is null ? [] : Utf8Names.Encode(options.DurableName, nameof(options.DurableName)),
            Filters = filters,
        };
        var start = await OpenAsync(state, cancellationToken).ConfigureAwait(false);
        return new ClientSubscription(this, state, (long)start);
    }

    /// <summary>
    /// Commits a durable subscription's position in <paramref name="message"/>'s topic as just after it (COMMIT
    /// offset + 1): after a restart the subscription resumes with the next message. Waits for the OK.
    /// </summary>
    /// <exception cref="InvalidOperationException">The message's subscription is not durable, or it is a work-queue message.</exception>
    public ValueTask CommitAsync(ClientMessage message, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(message);
        return CommitAsync(message.Owner, message.Topic, message.Offset + 1, cancellationToken);
    }

    internal async ValueTask CommitAsync(SubscriptionState state, string topic, long next, CancellationToken cancellationToken)
    {
        if (state.Kind != SubscriptionKind.Fanout || state.DurableName is null)
        {
            throw new InvalidOperationException("Only durable subscriptions (SubscribeOptions.DurableName) commit positions.");
        }

        ThrowIfFailed();
        var op = new ControlOp(ControlKind.Commit, 0, state, awaited: true) { Offset = (ulong)next, Text = Encoding.UTF8.GetBytes(topic), TopicName = topic };
        QueueControl(op);
        await op.Completion!.Task.WaitAsync(cancellationToken).ConfigureAwait(false);
    }

    internal async ValueTask CommitAllAsync(SubscriptionState state, CancellationToken cancellationToken)
    {
        if (state.Kind != SubscriptionKind.Fanout || state.DurableName is null)
        {
            throw new InvalidOperationException("Only durable subscriptions (SubscribeOptions.DurableName) commit positions.");
        }

        var positions = state.GetCommitPositions();
        if (positions.Count == 0)
        {
            return;
        }

        if (positions.Count == 1)
        {
            await CommitAsync(state, positions[0].Topic, positions[0].Next, cancellationToken).ConfigureAwait(false);
            return;
        }

        var tasks = new List<Task>(positions.Count);
        foreach (var (topic, next) in positions)
        {
            tasks.Add(CommitAsync(state, topic, next, cancellationToken).AsTask());
        }

        await Task.WhenAll(tasks).ConfigureAwait(false);
    }

    /// <summary>Registers a subscription or membership, sends it if connected, and waits for the first OK.</summary>
    private async ValueTask<ulong> OpenAsync(SubscriptionState state, CancellationToken cancellationToken)
    {
        lock (_sync)
        {
            if (_failure is { } f)
            {
                throw CopyFailure(f);
            }

            var copy = new Dictionary<uint, SubscriptionState>(_subscriptions) { [state.Id] = state };
            _subscriptions = copy;

            // Not connected: the next connection subscribes everything registered.
            if (_connection is not null && state.PrepareResubscribe(_generation, Features) is { } op)
            {
                _control.Add(op);
            }
        }

        _writeSignal.Set();
        try
        {
            return await state.Ready.Task.WaitAsync(cancellationToken).ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
            await CloseAsync(state).ConfigureAwait(false);
            throw;
        }
    }

    /// <summary>UNSUBSCRIBE (waits for the OK while connected) and end the buffer: readers finish after what is buffered.</summary>
    internal async ValueTask CloseAsync(SubscriptionState state)
    {
        ControlOp? op = null;
        lock (_sync)
        {
            if (_subscriptions.ContainsKey(state.Id))
            {
                var copy = new Dictionary<uint, SubscriptionState>(_subscriptions);
                copy.Remove(state.Id);
                _subscriptions = copy;
                if (_connection is not null && _failure is null)
                {
                    // A member's ACKs still queued go out with the UNSUBSCRIBE, first: the ACK writer runs after the
                    // control frames and skips an ended member, so they were lost, and the server requeued the
                    // acked messages for another member to do again.
                    DeliveryTag[]? acks = null;
                    if (state.PendingAcks.Count > 0 && state.Generation == _generation)
                    {
                        acks = [.. state.PendingAcks];
                        state.PendingAcks.Clear();
                    }

                    op = new ControlOp(ControlKind.Unsubscribe, 0, state, awaited: true) { Acks = acks };
                    _control.Add(op);
                }
            }

            // Ended under the lock: an ACK racing with the leave is either in the UNSUBSCRIBE's ACKs or refused.
            state.End(new BrokerClientException(ErrorCode.Closed, "the subscription was disposed"), quietly: true);
        }

        if (op is null)
        {
            return;
        }

        _writeSignal.Set();
        try
        {
            await op.Completion!.Task.ConfigureAwait(false);
        }
        catch (BrokerClientException)
        {
            // The client is closing: the subscription is gone either way.
        }
    }

    /// <summary>
    /// Whether the server's refusal of a subscription's or membership's resume after a reconnect is for now (the client
    /// keeps it and resumes it on the next connection) rather than for good (it ends with the server's code and reason).
    /// </summary>
    /// <remarks>
    /// For now: <see cref="ErrorCode.Closed"/> (the broker is shutting down: a restarted server or the promoted standby
    /// takes it), <see cref="ErrorCode.NotPrimary"/> (the other endpoint does), <see cref="ErrorCode.Timeout"/> and
    /// <see cref="ErrorCode.ResourceExhausted"/> (the server could not open the position or state file now: out of
    /// descriptors, memory or disk space). Every other code answers the same SUBSCRIBE or JOIN_GROUP the same way until
    /// someone acts, so retrying would only hide it: <see cref="ErrorCode.StorageError"/> (the durable name's position
    /// file or the group's state file is damaged, or the device cannot read it: EIO; the broker leaves it as it is and
    /// refuses the name until it is repaired or removed), <see cref="ErrorCode.InvalidArgument"/> (the start, filters or
    /// group settings are out of range for this server), <see cref="ErrorCode.InvalidName"/>,
    /// <see cref="ErrorCode.UnknownTopic"/> (auto-creation is off and the topic is gone), <see cref="ErrorCode.Forbidden"/>
    /// (the token may not read it), <see cref="ErrorCode.DurableNameInUse"/> (an embedded subscription of the server's
    /// broker holds the name: taking it back would take turns with it), <see cref="ErrorCode.TooManySubscriptions"/> (the
    /// server's limit is below what the client resumes), <see cref="ErrorCode.SubscriptionIdInUse"/>,
    /// <see cref="ErrorCode.Internal"/> (the server failed unexpectedly, a bug: it tends to fail the same way again, and
    /// retrying it on every reconnect would hide it, as Kafka's clients do not retry UNKNOWN_SERVER_ERROR; the
    /// application sees the reason and may subscribe again), and any code this client does not know (docs/protocol.md:
    /// an error of the request it answers).
    /// </remarks>
    internal static bool IsRetriableResumeRefusal(ErrorCode code) => code is ErrorCode.Closed or ErrorCode.NotPrimary or ErrorCode.Timeout or ErrorCode.ResourceExhausted;

    private uint NextSubscriptionId()
    {
        var id = Interlocked.Increment(ref _nextSubscriptionId);
        return id == 0 ? Interlocked.Increment(ref _nextSubscriptionId) : id;
    }

    /// <summary>The application took a message: send CREDIT when half the window was consumed.</summary>
    internal void OnTaken(SubscriptionState state, uint credit, long generation)
    {
        if (credit > 0 && !state.Ended)
        {
            QueueControl(new ControlOp(ControlKind.Credit, generation, state) { Value = credit });
        }
    }
}
