namespace FastBroker.Server.Internal;

/// <summary>
/// A subscription or group membership of one session. The reader thread creates, credits and closes it; the writer
/// fetches from it. <see cref="Gate"/> is held while the writer fetches and while anyone closes or commits, so the
/// broker object is never disposed under a running fetch.
/// </summary>
internal abstract class Consumer
{
    private readonly Session _session;
    private volatile bool _closed;
    private long _credit;

    protected Consumer(Session session, uint id, long credit)
    {
        _session = session;
        Id = id;
        _credit = credit;
    }

    /// <summary>The client's subscription (or membership) id.</summary>
    public uint Id { get; }

    /// <summary>Held while fetching, closing or committing.</summary>
    public object Gate { get; } = new();

    /// <summary>True once closed: the writer skips it.</summary>
    public bool Closed => _closed;

    /// <summary>Deliveries the client allows before its next CREDIT (subscriptions only).</summary>
    public long Credit => Volatile.Read(ref _credit);

    /// <summary>Most deliveries the writer may make now.</summary>
    public abstract int Available { get; }

    /// <summary>Adds credit (the reader, on CREDIT).</summary>
    public void AddCredit(long credit) => Interlocked.Add(ref _credit, credit);

    /// <summary>
    /// Writes up to <paramref name="max"/> deliveries through <paramref name="encoder"/>; returns how many, with
    /// <paramref name="more"/> true when more may be ready at once (a full batch, or one that filters emptied). Writer
    /// thread, under <see cref="Gate"/>.
    /// </summary>
    public abstract int Deliver(DeliveryEncoder encoder, int max, out bool more);

    /// <summary>Closes the consumer and releases its broker object (idempotent, any thread).</summary>
    public void Close()
    {
        lock (Gate)
        {
            if (_closed)
            {
                return;
            }

            _closed = true;
            try
            {
                ReleaseBrokerObject();
            }
            catch (Exception e)
            {
                _session.LogError($"closing subscription {Id}", e);
            }
        }
    }

    /// <summary>
    /// Wakes the session's writer whenever the broker says messages may be readable, while there is credit to use
    /// them. One awaiting loop per consumer; its state machine is allocated once, not per wake-up.
    /// </summary>
    public async Task WatchAsync()
    {
        try
        {
            while (!_closed)
            {
                await WaitReadableAsync().ConfigureAwait(false);
                if (!_closed && Available > 0)
                {
                    _session.WakeWriter();
                }
            }
        }
        catch (Exception e)
        {
            _session.LogError($"watching subscription {Id}", e);
        }
    }

    protected void ConsumeCredit(int delivered) => Interlocked.Add(ref _credit, -delivered);

    protected abstract ValueTask WaitReadableAsync();

    protected abstract void ReleaseBrokerObject();
}
