using System.Buffers.Binary;
using System.Diagnostics;
using FastBroker.Storage;
using FastBroker.Threading;

namespace FastBroker.Engine;

/// <summary>
/// A work-queue group at run time: reads its topic ahead of its members' credit, keeps outstanding messages in
/// pooled buffers, hands them out through <see cref="WorkQueueState"/> (one member at a time, round-robin over
/// members with credit, priorities, timeouts, dead letters) and persists what is done in a
/// <see cref="GroupAckStore"/>, so a restart redelivers exactly the messages that were not acked.
/// </summary>
internal sealed partial class WorkQueueGroup : IDisposable
{
    private static readonly byte[] s_priorityHeader = "fb-priority"u8.ToArray();

    private readonly Broker _broker;
    private readonly object _gate = new();
    private readonly WorkQueueState _state;
    private readonly GroupAckStore _store;
    private readonly StateFileMark _stateFile; // its changes, signalled to the replicator
    private readonly TopicCursor _feed;
    private readonly AsyncSignal _topicSignal = new();
    private readonly Task _feeder;
    private readonly CancellationTokenSource _stop = new();
    private readonly Dictionary<long, PooledMessage> _outstanding = [];
    private readonly Stack<PooledMessage> _pool = new();
    private readonly Dictionary<int, WorkQueueMember> _members = [];
    private readonly long _epochTicks = Stopwatch.GetTimestamp();
    private int _pendingDeadLetters;
    private long _deadLettersDropped;
    private long _expired;
    private bool _disposed;
    private int _timerTickRunning; // 1 while the broker timer runs this group's tick (TryBeginTimerTick): a callback that finds it set skips the group

    public WorkQueueGroup(Broker broker, TopicState topic, string name, GroupOptions options)
    {
        _broker = broker;
        Topic = topic;
        Name = name;
        Options = options;
        DeadLetterTopic = options.DeadLetterTopic ?? topic.Name + ".dlq";

        // Refused here, before the group exists: a dead-letter topic that can never be written would drop every dead
        // letter (counted and logged) instead of storing it.
        if (TopicName.Validate(DeadLetterTopic) is { } reason)
        {
            throw new BrokerException(BrokerErrorCode.InvalidName, $"group '{name}' on topic '{topic.Name}': its dead-letter topic '{TopicName.Printable(DeadLetterTopic)}' is not a valid topic name ({reason}){(options.DeadLetterTopic is null ? "; set GroupOptions.DeadLetterTopic" : "")}");
        }

        if (DeadLetterTopic == topic.Name)
        {
            throw new BrokerException(BrokerErrorCode.InvalidArgument, $"group '{name}': dead letters of topic '{topic.Name}' cannot go to that topic itself (they would be delivered again)");
        }

        var initialFloor = options.Start.Kind switch
        {
            StartKind.Latest => topic.Head,
            StartKind.Offset => Math.Max(topic.Tail, options.Start.Value),
            _ => topic.Tail,
        };
        if (!topic.Persistent)
        {
            throw new BrokerException(BrokerErrorCode.InvalidArgument, $"work-queue groups need a persistent topic ('{topic.Name}' is transient)");
        }

        // A state file that exists but holds nothing (its data lost to a power loss, say) is not a new group: the start
        // position would skip every message it had not acked. It starts at the oldest message kept, delivering again
        // what it may have acked (at least once), and says so.
        var path = Path.Combine(topic.Directory, "groups", name + ".state");
        _store = OpenStore(path, topic, name, options, initialFloor, broker);
        _stateFile = new StateFileMark(path);
        if (_store.WasBlank)
        {
            broker.LogBlankStateFile($"{topic.Name}: group '{name}': its state file {path} held no state (empty, zeros, or cut short before its ack floor: lost to a power loss?): the group starts from the oldest message kept, offset {topic.Tail}, not from its start position ({options.Start.Kind}); messages it had acked are delivered again");
        }
        else if (_store.PaddedFrom > 0)
        {
            // Cut short since the broker's open (whose check reports and pads one found so then).
            broker.LogStateFileDamage($"{topic.Name}: group '{name}': its state file {path} is cut short ({_store.PaddedFrom} of {GroupAckStore.FileLength()} bytes; its ack floor {_store.Floor} is intact): the done marks in its lost part are gone, so messages above the ack floor that the group had acked may be delivered again; the file is padded to its full size");
        }

        // Retention may have removed messages the group had not finished: it then starts at what is kept.
        // Its reader pins retention: a pass that asked the broker's floors before this group existed would otherwise
        // delete the segment the reader starts in, and the group (whose offsets must be dense) could never go on.
        _feed = new TopicCursor(topic, StartPosition.AtOffset(Math.Max(_store.Floor, topic.Tail)), null, topicIsNew: false, pinRetention: true);
        _store.AdvanceFloor(_feed.NextOffset);
        _store.RequestSync();
        topic.Replication?.GroupStateChanged(_stateFile);
        _state = new WorkQueueState(_feed.NextOffset, options.MaxDeliveries, options.VisibilityTimeout, options.PriorityLevels);
        topic.AddListener(_topicSignal);
        _feeder = Task.Run(FeedLoopAsync);
    }

    /// <summary>The group's state; a file that is not a group's is refused (left as it is) naming it, why, and what to do.</summary>
    private static GroupAckStore OpenStore(string path, TopicState topic, string name, GroupOptions options, long initialFloor, Broker broker)
    {
        try
        {
            return GroupAckStore.Open(path, initialFloor, flusher: topic.Options.Durability == Durability.Fsynced ? broker.StateFlusher : null, blankFloor: topic.Tail);
        }
        catch (InvalidDataException e)
        {
            // Nothing in it says what the group acked: neither its floor nor its start position may be guessed.
            throw new BrokerException(BrokerErrorCode.StorageError, $"group '{name}' on topic '{topic.Name}': {e.Message}: nothing in it says what the group acked, so it is not joined; repair the file, or remove it to start the group anew from its start position ({options.Start.Kind})", e);
        }
        catch (Exception e) when (ResourceShortage.Describe(e) is { } shortage)
        {
            // The system could not do it now: the file is as it was, and the same join may succeed later.
            throw new BrokerException(BrokerErrorCode.ResourceExhausted, $"group '{name}' on topic '{topic.Name}': its state file {path} cannot be opened now ({shortage}: {e.Message}); nothing was changed, try again later", e);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new BrokerException(BrokerErrorCode.StorageError, $"group '{name}' on topic '{topic.Name}': its state file {path} cannot be opened: {e.Message}", e);
        }
    }

    public TopicState Topic { get; }

    public string Name { get; }

    public GroupOptions Options { get; }

    public string DeadLetterTopic { get; }

    public long NowMs => (long)Stopwatch.GetElapsedTime(_epochTicks).TotalMilliseconds;

    public WorkQueueMember Join(int prefetch)
    {
        lock (_gate)
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            var id = _state.AddMember(prefetch);
            var member = new WorkQueueMember(this, id, prefetch);
            _members[id] = member;
            PumpLocked();
            return member;
        }
    }

    public void AddPrefetch(WorkQueueMember member, int credit)
    {
        lock (_gate)
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            _state.AddPrefetch(member.Id, credit);
            PumpLocked();
        }
    }

    public void Leave(WorkQueueMember member, bool requeueNow)
    {
        lock (_gate)
        {
            _members.Remove(member.Id);
            _state.RemoveMember(member.Id, requeueNow);
            member.DrainQueue();
            PumpLocked();
        }
    }

    /// <summary>Reads new messages, expires timeouts, hands out what members have credit for.</summary>
    public void Pump()
    {
        lock (_gate)
        {
            PumpLocked();
        }
    }

    /// <summary>
    /// Broker timer tick: expire visibility timeouts and delayed nacks, pick up new messages, and check now and then that
    /// the state file is still at its path.
    /// </summary>
    public void OnTimer()
    {
        Pump();
        CheckStateFileOnTimer();
    }

    /// <summary>
    /// The broker's timer, before <see cref="OnTimer"/>: false while this group's previous tick still runs (the timer
    /// skips the group, not the others); true, and <see cref="EndTimerTick"/> follows the tick.
    /// </summary>
    internal bool TryBeginTimerTick() => Interlocked.CompareExchange(ref _timerTickRunning, 1, 0) == 0;

    /// <summary>The broker's timer: this group's tick ended.</summary>
    internal void EndTimerTick() => Volatile.Write(ref _timerTickRunning, 0);

    public WorkQueueOutcome Ack(WorkQueueMember member, long offset, int deliveryCount)
    {
        lock (_gate)
        {
            if (_disposed)
            {
                // The broker closed (its state file is unmapped): nothing changes, a restart delivers the message again.
                return WorkQueueOutcome.UnknownDelivery;
            }

            var outcome = _state.Ack(member.Id, offset, deliveryCount);
            if (outcome == WorkQueueOutcome.Acked)
            {
                Done(offset);
                PumpLocked();
            }

            return outcome;
        }
    }

    public WorkQueueOutcome Nack(WorkQueueMember member, long offset, int deliveryCount, bool requeue, TimeSpan delay, string? error)
    {
        lock (_gate)
        {
            if (_disposed)
            {
                return WorkQueueOutcome.UnknownDelivery;
            }

            var outcome = _state.Nack(member.Id, offset, deliveryCount, requeue, (long)delay.TotalMilliseconds, error, NowMs);
            if (outcome != WorkQueueOutcome.UnknownDelivery)
            {
                PumpLocked();
            }

            return outcome;
        }
    }

    public bool GiveBack(WorkQueueMember member, long offset, int deliveryCount)
    {
        lock (_gate)
        {
            if (_disposed || !_state.GiveBack(member.Id, offset, deliveryCount))
            {
                return false;
            }

            PumpLocked();
            return true;
        }
    }

    /// <summary>
    /// True while this queued copy is still the member's delivery (not timed out or given back since it was queued, broker
    /// open), which from now on counts as received: the member's caller is about to hand it over (Fetch). Its visibility
    /// timeout counts from now.
    /// </summary>
    public bool TryHandOver(WorkQueueMember member, in MemberDelivery delivery) =>
        !Volatile.Read(ref _disposed) && _state.TryHandOver(member.Id, delivery.Message.Offset, delivery.DeliveryCount, delivery.Sequence, NowMs);

    public void Release(PooledMessage message)
    {
        if (message.Release())
        {
            lock (_gate)
            {
                _pool.Push(message);
            }
        }
    }

    /// <summary>
    /// The ack floor in the group's state file: what a restart resumes from, so what retention must keep. It trails the
    /// in-memory floor while a dead letter is still being published (long.MaxValue once disposed).
    /// </summary>
    public long PersistedFloor
    {
        get
        {
            lock (_gate)
            {
                return _disposed ? long.MaxValue : _store.Floor;
            }
        }
    }

    public GroupSnapshot Snapshot()
    {
        var c = _state.Counters;
        return new GroupSnapshot(Topic.Name, Name, c.Members, c.AckFloor, Math.Max(0, Topic.Head - c.AckFloor), c.Ready, c.InFlight, c.Acked, c.Redelivered, c.DeadLettered, Volatile.Read(ref _expired))
        {
            DeadLettersPending = Volatile.Read(ref _pendingDeadLetters),
            DeadLettersDropped = Volatile.Read(ref _deadLettersDropped),
            FeedLoopFailures = FeedLoopFailures,
        };
    }

    public void Dispose()
    {
        lock (_gate)
        {
            if (_disposed)
            {
                return;
            }

            _disposed = true;
            _stop.Cancel();
            _topicSignal.Set();
            Topic.RemoveListener(_topicSignal);
            foreach (var m in _members.Values)
            {
                m.CloseFromGroup();
            }

            _members.Clear();
            _feed.Dispose();
            CheckStateFileLocked(closing: true); // the last chance to keep what it acked since a removal
            _store.Dispose();
        }

        EndFeedLoopLog();
    }

    private void PumpLocked()
    {
        if (_disposed)
        {
            return;
        }

        Feed();
        var now = NowMs;
        while (_state.TryAssign(now, out var a))
        {
            if (!_members.TryGetValue(a.MemberId, out var member) || !_outstanding.TryGetValue(a.Offset, out var message))
            {
                continue;
            }

            // A message can expire while it waits: read ahead, nacked with a delay, or back from a lost delivery.
            if (IsExpired(message.Flags, message.Headers) && _state.Expire(a.MemberId, a.Offset, a.DeliveryCount))
            {
                _expired++;
                Topic.CountExpired(a.Offset);
                Done(a.Offset);
                continue;
            }

            message.AddRef();
            member.Enqueue(new MemberDelivery(message, a.DeliveryCount, a.Sequence));
        }

        while (_state.TryTakeDeadLetter(out var dl))
        {
            if (_outstanding.Remove(dl.Offset, out var message))
            {
                Interlocked.Increment(ref _pendingDeadLetters);
                _ = PublishDeadLetterAsync(dl, message);
            }
        }
    }

    private void Feed()
    {
        // Read ahead only as far as members can take soon: outstanding copies stay bounded. In longs: prefetches go up
        // to int.MaxValue each (the wire's u32 clamped), so their sum, and twice it, overflow an int.
        var credit = 0L;
        foreach (var m in _members.Values)
        {
            credit += m.Prefetch;
        }

        // Delayed nacks are not ready to hand out: they must not keep fresh messages from members with credit (the
        // window bound below still caps how many are outstanding).
        var counters = _state.Counters;
        var room = Math.Min((credit * 2) - (counters.Ready - counters.Delayed), (_store.Window / 2) - (counters.NextOffset - _store.Floor));
        if (room <= 0)
        {
            return;
        }

        var sink = new FeedSink(this);
        if (!DeadLetterDamagedRun())
        {
            return; // the rest of a damaged run first, as the window makes room
        }

        // At most 64 damaged runs passed over per pump (each one seek, its offsets dead-lettered): the next pump goes on.
        for (var damaged = 0; damaged < 64; damaged++)
        {
            try
            {
                _feed.Read((int)Math.Min(room, 4096), ref sink);
                return;
            }
            catch (BrokerException e) when (e.Code == BrokerErrorCode.DamagedRecord)
            {
                if (!FeedPastDamage(e))
                {
                    return;
                }
            }
        }
    }

    private void Offer(scoped in MessageView m, ushort flags)
    {
        if (_store.IsDone(m.Offset))
        {
            _state.Skip(m.Offset);
            return;
        }

        if (IsExpired(flags, m.Headers))
        {
            _expired++;
            Topic.CountExpired(m.Offset);
            _state.Skip(m.Offset);
            _store.MarkDone(m.Offset);
            _store.AdvanceFloorWhileDone();
            _store.RequestSync();
            Topic.Replication?.GroupStateChanged(_stateFile);
            return;
        }

        var priority = 0;
        if (Options.PriorityLevels > 1 && m.TryGetHeader(s_priorityHeader, out var p) && p.Length >= 1)
        {
            priority = p[0] is >= (byte)'0' and <= (byte)'9' ? p[0] - '0' : p[0];
        }

        var message = _pool.Count > 0 ? _pool.Pop() : new PooledMessage();
        message.Fill(m, flags);
        _outstanding[m.Offset] = message;
        _state.Enqueue(m.Offset, priority);
    }

    private static bool IsExpired(ushort flags, ReadOnlySpan<byte> headers) =>
        (flags & Broker.HasExpiryFlag) != 0
        && ReservedHeaders.TryGetBrokerWritten(headers, Broker.ExpiresHeaderName, out var exp)
        && exp.Length == 8
        && BinaryPrimitives.ReadInt64LittleEndian(exp) <= DateTimeOffset.UtcNow.ToUnixTimeMilliseconds();

    private void Done(long offset)
    {
        if (_outstanding.Remove(offset, out var message) && message.Release())
        {
            _pool.Push(message);
        }

        _store.MarkDone(offset);
        _store.AdvanceFloorWhileDone();
        _store.RequestSync(); // Fsynced topic: msynced by the broker's state flusher, batched with other acks
        Topic.Replication?.GroupStateChanged(_stateFile);
    }

    private readonly ref struct FeedSink(WorkQueueGroup group) : ICursorSink
    {
        public void Offer(scoped in MessageView message, ushort flags) => group.Offer(message, flags);

        public void Missed(long count)
        {
            // The group's ack floor holds retention back (Broker.RetentionFloorOf) and its feed reader pins it (a group
            // created while a pass runs), so its reader does not skip.
        }
    }
}

/// <summary>A delivery waiting in a member's queue.</summary>
internal readonly record struct MemberDelivery(PooledMessage Message, int DeliveryCount, long Sequence);
