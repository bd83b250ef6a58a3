namespace FastBroker.Engine;

/// <summary>
/// The bookkeeping of one work-queue group over one topic: which messages are ready, which are in flight with
/// which member until when, how often each was delivered, and what is done. Time is passed in (milliseconds on
/// any monotonic clock) so the rules can be tested without waiting.
/// </summary>
/// <remarks>
/// <para>Rules: a message is in flight with at most one member at a time; a member holds at most its prefetch;
/// members with credit take turns (round-robin); higher priority levels are dispatched first; redeliveries of a
/// level go before its fresh messages. An unacked delivery returns to the queue only when its visibility timeout
/// passes (or its member leaves gracefully); a nack returns it at once or after a delay; a delivery that has been
/// made <c>maxDeliveries</c> times and fails again (nack or timeout), or a nack without requeue, goes to the
/// dead-letter queue with its history. A delivery is an attempt (counts toward <c>maxDeliveries</c>) only once it was
/// handed to its member (<see cref="TryHandOver"/>): one that times out or whose member leaves before that goes back
/// with its delivery count restored, and so do those a leaving member was handed after the one it was working on
/// (<see cref="RemoveMember"/>).</para>
/// <para>Offsets must be offered densely (<see cref="Enqueue"/> or <see cref="Skip"/> for each one, in order), so
/// that <see cref="AckFloor"/> (every offset below it is acked or dead-lettered) is what a restart resumes from.</para>
/// <para>Thread-safe: every member runs under one lock; critical sections are short and allocation-free in steady state.</para>
/// </remarks>
internal sealed partial class WorkQueueState
{
    private readonly object _gate = new();
    private readonly int _maxDeliveries;
    private readonly long _visibilityTimeoutMs;
    private readonly Queue<long>[] _fresh;
    private readonly Queue<long>[] _redeliver;
    private readonly Dictionary<long, int> _deliveryCounts = new();
    private readonly Dictionary<long, int> _priorities = new();
    private readonly Dictionary<long, string> _lastErrors = new();
    private readonly PriorityQueue<long, long> _delayed = new();
    private readonly Dictionary<long, InFlight> _inFlight = new();
    // Keyed by the assignment's sequence, not its delivery count: a delivery that went back unhanded gets its count back.
    private readonly PriorityQueue<(long Offset, long Sequence), long> _deadlines = new();
    private readonly HashSet<long> _doneAboveFloor = new();
    private readonly List<Due> _due = new(); // PromoteDue's, reused
    private readonly Queue<DeadLetter> _deadLetters = new();
    private readonly List<Member> _members = new();
    private int _nextMemberId = 1;
    private long _nextSequence = 1;
    private long _nextHandedOrder = 1;
    private int _roundRobin;
    private long _floor;
    private long _nextOffset;
    private long _acked;
    private long _redelivered;
    private long _deadLettered;

    /// <summary>Creates the state for a group that starts consuming at <paramref name="startOffset"/>.</summary>
    public WorkQueueState(long startOffset, int maxDeliveries, TimeSpan visibilityTimeout, int priorityLevels = 1)
    {
        if (maxDeliveries < 1)
        {
            throw new BrokerException(BrokerErrorCode.InvalidArgument, "maxDeliveries must be at least 1");
        }

        if (visibilityTimeout <= TimeSpan.Zero)
        {
            throw new BrokerException(BrokerErrorCode.InvalidArgument, "the visibility timeout must be positive");
        }

        if (priorityLevels is < 1 or > 256)
        {
            throw new BrokerException(BrokerErrorCode.InvalidArgument, "priority levels must be between 1 and 256");
        }

        _maxDeliveries = maxDeliveries;
        _visibilityTimeoutMs = (long)visibilityTimeout.TotalMilliseconds;
        _fresh = new Queue<long>[priorityLevels];
        _redeliver = new Queue<long>[priorityLevels];
        for (var i = 0; i < priorityLevels; i++)
        {
            _fresh[i] = new Queue<long>();
            _redeliver[i] = new Queue<long>();
        }

        _floor = startOffset;
        _nextOffset = startOffset;
    }

    /// <summary>Every offset below this is acked or dead-lettered: where a restarted group resumes.</summary>
    public long AckFloor
    {
        get
        {
            lock (_gate)
            {
                return _floor;
            }
        }
    }

    /// <summary>The next offset <see cref="Enqueue"/> expects.</summary>
    public long NextOffset
    {
        get
        {
            lock (_gate)
            {
                return _nextOffset;
            }
        }
    }

    /// <summary>Counters for lag and metrics.</summary>
    public WorkQueueCounters Counters
    {
        get
        {
            lock (_gate)
            {
                var ready = 0;
                for (var i = 0; i < _fresh.Length; i++)
                {
                    ready += _fresh[i].Count + _redeliver[i].Count;
                }

                return new WorkQueueCounters(_floor, _nextOffset, ready + _delayed.Count, _inFlight.Count, _acked, _redelivered, _deadLettered, _members.Count, _delayed.Count);
            }
        }
    }

    /// <summary>Visibility timeouts being tracked (tests: about what is in flight, at most twice it + 64).</summary>
    internal int TrackedTimeouts
    {
        get
        {
            lock (_gate)
            {
                return _deadlines.Count;
            }
        }
    }

    /// <summary>Adds a member that may hold up to <paramref name="prefetch"/> unacked messages; returns its id.</summary>
    public int AddMember(int prefetch)
    {
        if (prefetch < 1)
        {
            throw new BrokerException(BrokerErrorCode.InvalidArgument, "prefetch must be at least 1");
        }

        lock (_gate)
        {
            var m = new Member(_nextMemberId++, prefetch);
            _members.Add(m);
            return m.Id;
        }
    }

    /// <summary>Raises a member's prefetch by <paramref name="credit"/> (the wire protocol's CREDIT on a membership).</summary>
    public void AddPrefetch(int memberId, int credit)
    {
        lock (_gate)
        {
            var m = _members.Find(x => x.Id == memberId)
                ?? throw new BrokerException(BrokerErrorCode.UnknownDelivery, $"member {memberId} is not in the group");
            m.Prefetch = (int)Math.Min(int.MaxValue, (long)m.Prefetch + credit);
        }
    }

    /// <summary>
    /// Removes a member. Of the in-flight messages it was handed (<see cref="TryHandOver"/>), only the one it was handed
    /// first counts as an attempt: a consumer works on its deliveries in the order it receives them, so that is the one
    /// it was working on, and the others were waiting behind it in its prefetch buffer (or the socket), unseen. With
    /// <paramref name="requeueNow"/> (it left, its connection dropped) that one is ready again at once as its next
    /// delivery, or dead-lettered if it has had MaxDeliveries; without (it vanished) it waits for its visibility timeout
    /// like any lost delivery. Every other one goes back with its delivery count restored: at once with
    /// <paramref name="requeueNow"/> or when it was never handed, else at its visibility timeout. Before, every handed
    /// delivery counted, so each reconnect or crash of a consumer with a prefetch of P used up an attempt of P messages
    /// and a few of them dead-lettered jobs nobody had tried (1,957 of 2,000 in a run that killed consumers over and
    /// over). A message that kills the consumer working on it is still the first it was handed, so it still reaches the
    /// dead-letter topic after MaxDeliveries.
    /// </summary>
    public void RemoveMember(int memberId, bool requeueNow)
    {
        lock (_gate)
        {
            var index = _members.FindIndex(m => m.Id == memberId);
            if (index < 0)
            {
                return;
            }

            _members.RemoveAt(index);
            List<long>? mine = null;
            var working = -1L;
            var workingOrder = long.MaxValue;
            foreach (var (offset, f) in _inFlight)
            {
                if (f.MemberId != memberId)
                {
                    continue;
                }

                (mine ??= []).Add(offset);
                if (f.Handed && f.HandedOrder < workingOrder)
                {
                    (working, workingOrder) = (offset, f.HandedOrder);
                }
            }

            if (mine is null)
            {
                return;
            }

            mine.Sort();
            foreach (var offset in mine)
            {
                var f = _inFlight[offset];
                if (offset == working)
                {
                    if (requeueNow)
                    {
                        _inFlight.Remove(offset);
                        Requeue(offset, f.DeliveryCount, 0, 0, "its member left without acking it");
                    }

                    continue;
                }

                if (requeueNow || !f.Handed)
                {
                    // Assigned but never fetched (in-process) or written to the connection (server), or behind the one
                    // the member was working on: it never saw it, so it is no attempt.
                    _inFlight.Remove(offset);
                    Restore(offset, f.DeliveryCount);
                    continue;
                }

                // Vanished: it goes back at its visibility timeout, uncounted like a delivery that was never handed.
                _inFlight[offset] = f with { HandedOrder = 0 };
            }
        }
    }

    /// <summary>Offers the next offset of the topic (offsets must come densely and in order).</summary>
    public void Enqueue(long offset, int priority = 0)
    {
        lock (_gate)
        {
            EnsureNext(offset);
            priority = Math.Clamp(priority, 0, _fresh.Length - 1);
            if (priority != 0)
            {
                _priorities[offset] = priority;
            }

            _fresh[priority].Enqueue(offset);
            _nextOffset = offset + 1;
        }
    }

    /// <summary>Passes over an offset that is not for this group (filtered out, expired): it counts as done.</summary>
    public void Skip(long offset)
    {
        lock (_gate)
        {
            EnsureNext(offset);
            _nextOffset = offset + 1;
            MarkDone(offset);
        }
    }

    /// <summary>
    /// Gives the next ready message to the next member with credit. First returns expired deliveries and due
    /// delayed nacks to the queue (and dead-letters those out of attempts).
    /// </summary>
    public bool TryAssign(long nowMs, out WorkAssignment assignment)
    {
        lock (_gate)
        {
            PromoteDue(nowMs);
            assignment = default;
            if (_members.Count == 0)
            {
                return false;
            }

            var level = -1;
            var redelivery = false;
            for (var p = _fresh.Length - 1; p >= 0; p--)
            {
                if (_redeliver[p].Count > 0)
                {
                    level = p;
                    redelivery = true;
                    break;
                }

                if (_fresh[p].Count > 0)
                {
                    level = p;
                    break;
                }
            }

            if (level < 0)
            {
                return false;
            }

            var member = NextMemberWithCredit();
            if (member is null)
            {
                return false;
            }

            var offset = redelivery ? _redeliver[level].Dequeue() : _fresh[level].Dequeue();
            var count = _deliveryCounts.GetValueOrDefault(offset) + 1;
            _deliveryCounts[offset] = count;
            if (_deadlines.Count >= (2 * _inFlight.Count) + 64)
            {
                RebuildDeadlines();
            }

            var deadline = nowMs + _visibilityTimeoutMs;
            var sequence = _nextSequence++;
            _inFlight[offset] = new InFlight(member.Id, count, deadline, sequence);
            _deadlines.Enqueue((offset, sequence), deadline);
            assignment = new WorkAssignment(member.Id, offset, count, level) { Sequence = sequence };
            return true;
        }
    }

    /// <summary>A restartable picture of what is done: the floor and the offsets above it that are acked or dead-lettered.</summary>
    public (long Floor, long[] DoneAboveFloor) Snapshot()
    {
        lock (_gate)
        {
            var done = new long[_doneAboveFloor.Count];
            _doneAboveFloor.CopyTo(done);
            Array.Sort(done);
            return (_floor, done);
        }
    }

    private void EnsureNext(long offset)
    {
        if (offset != _nextOffset)
        {
            throw new InvalidOperationException($"work-queue offsets must be dense: expected {_nextOffset}, got {offset}");
        }
    }

    private Member? NextMemberWithCredit()
    {
        var n = _members.Count;
        for (var i = 0; i < n; i++)
        {
            var m = _members[(_roundRobin + i) % n];
            if (m.InFlight < m.Prefetch)
            {
                _roundRobin = (_roundRobin + i + 1) % n;
                m.InFlight++;
                return m;
            }
        }

        return null;
    }

    private void ReleaseCredit(int memberId)
    {
        foreach (var m in _members)
        {
            if (m.Id == memberId)
            {
                m.InFlight--;
                return;
            }
        }
    }

    /// <summary>
    /// A delivery out with a member; <c>Sequence</c> numbers the assignment (unique in the group), <c>HandedOrder</c> its
    /// hand-over to the member (<see cref="TryHandOver"/>), in the order of hand-overs in the group, 0 before.
    /// </summary>
    private readonly record struct InFlight(int MemberId, int DeliveryCount, long DeadlineMs, long Sequence, long HandedOrder = 0)
    {
        /// <summary>The member received it: it counts as an attempt if it is not settled (but see <see cref="RemoveMember"/>).</summary>
        public bool Handed => HandedOrder != 0;
    }

    private sealed class Member(int id, int prefetch)
    {
        public int Id { get; } = id;

        public int Prefetch { get; set; } = prefetch;

        public int InFlight { get; set; }
    }
}
