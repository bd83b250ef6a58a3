namespace FastBroker.Engine;

/// <summary>
/// Publishers waiting for room in the full input ring, woken by the journaler when it frees slots: each end of a
/// batch that finds a waiter registered has the current round (one <see cref="TaskCompletionSource"/>) completed, from
/// the thread pool, which wakes every waiter of it to re-check the room it needs; the broker's close completes it too.
/// The journaler's cost per batch is one fence and one read of the waiter count, and while anyone waits one interlocked
/// flag and at most one thread-pool work item, whatever the number of waiters: nothing is allocated on its thread.
/// </summary>
/// <remarks>
/// Lost wake-ups are impossible by a Dekker argument, as in the ring's blocking wait strategy: a waiter registers (an
/// interlocked increment of the count, a full fence) and then re-checks the ring's capacity, which reads the
/// journaler's sequence; the journaler stores its sequence, fences (<see cref="Ring.Sequence.SetValueVolatile"/>) and
/// then reads the count. A bare volatile read after the store would not do: x64 lets a load pass an earlier store, so
/// the journaler could read a count of 0 while the waiter read the old sequence, and both would sleep. So either the
/// waiter sees the freed slots and does not sleep, or the journaler sees the waiter and has the round completed under
/// the lock after its store: the waiter took its round under the same lock, so either it holds the round being
/// completed or it took the next one after the swap, and then its re-check comes after the journaler's store and finds
/// the room. Continuations
/// run asynchronously: the journaler thread never runs a publisher's code. No timer backs this up: room appears only
/// when the journaler's sequence moves, and every move that can free a slot a waiter asked for ends a batch here.
/// <para>
/// The journaler does not complete the round itself: completing it queues each waiter's continuation (and, for a
/// cancellable wait, allocates an invoker per waiter), work that grows with the number of waiters, a server's blocked
/// sessions, and would fall on the single writer at the end of every batch while the ring is full. It queues this
/// object to the thread pool instead (one work item, nothing allocated), at most once at a time: while a wake is
/// queued and has not started, a batch that finds waiters queues nothing more. That loses nothing: the queued wake
/// clears its flag (a full fence) before it swaps the round, so a journaler that saw the flag set knows that a swap
/// comes after its own store of the sequence, and every waiter it counted holds that round or an older one, already
/// completed.
/// </para>
/// </remarks>
internal sealed class RoomWaiters : IThreadPoolWorkItem
{
    private readonly object _gate = new();
    private TaskCompletionSource _round = NewRound();
    private int _count;
    private long _sleeps;
    private int _wakeQueued; // 1 from the journaler's queueing of a wake until that wake starts

    /// <summary>Waiters registered now.</summary>
    public int Count => Volatile.Read(ref _count);

    /// <summary>How many times a waiter went to sleep (found no room after registering): a test's measure that waiters do not poll.</summary>
    public long Sleeps => Interlocked.Read(ref _sleeps);

    /// <summary>
    /// Registers a waiter and returns the round that wakes it. Re-check the room after this, then await the round (or
    /// not), then <see cref="Leave"/>.
    /// </summary>
    public Task Enter()
    {
        lock (_gate)
        {
            Interlocked.Increment(ref _count);
            return _round.Task;
        }
    }

    /// <summary>Counts a waiter going to sleep on its round.</summary>
    public void CountSleep() => Interlocked.Increment(ref _sleeps);

    /// <summary>Unregisters a waiter (woken, cancelled, or not needing to sleep).</summary>
    public void Leave() => Interlocked.Decrement(ref _count);

    /// <summary>
    /// The journaler, after storing its sequence with a full fence: wakes the waiters if there are any, from the thread
    /// pool (see remarks). One volatile read when there are none.
    /// </summary>
    public void WakeIfAny()
    {
        if (Volatile.Read(ref _count) != 0 && Interlocked.CompareExchange(ref _wakeQueued, 1, 0) == 0)
        {
            ThreadPool.UnsafeQueueUserWorkItem(this, preferLocal: false);
        }
    }

    /// <summary>The wake <see cref="WakeIfAny"/> queued, on a thread-pool thread.</summary>
    void IThreadPoolWorkItem.Execute()
    {
        Interlocked.Exchange(ref _wakeQueued, 0); // before the swap: a batch from here on queues a wake of its own
        WakeAll();
    }

    /// <summary>Wakes every waiter registered now (the journaler when it freed slots, the broker when it closes).</summary>
    public void WakeAll()
    {
        TaskCompletionSource round;
        lock (_gate)
        {
            round = _round;
            _round = NewRound();
        }

        round.TrySetResult();
    }

    private static TaskCompletionSource NewRound() => new(TaskCreationOptions.RunContinuationsAsynchronously);
}
