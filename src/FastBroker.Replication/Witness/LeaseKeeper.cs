using FastBroker.Replication.Internal;

namespace FastBroker.Replication;

/// <summary>
/// What a primary runs: holds the witness lease by renewing it in the background, and answers "may I still act as
/// primary?" with <see cref="IsValid"/>, a clock read and two field reads, cheap enough for every batch.
/// </summary>
/// <remarks>
/// <para>
/// Conservative by construction: a grant counts from a timestamp taken <em>before</em> its request was sent (the
/// witness counts from after it answered) and ends <see cref="SafetyFraction"/> of the TTL early, so the keeper stops
/// believing in the lease before the witness could hand it to anyone else; the witness adds its own
/// <see cref="WitnessOptions.SafetyMargin"/> on top.
/// </para>
/// <para>
/// <see cref="Lost"/> is raised once when the lease stops being valid: a renewal was denied, a renewal came back at
/// another epoch (the lease was not continuous), or no renewal succeeded before the lease ran out (checked by a
/// one-shot timer re-armed on each renewal, not by polling). It is not raised by <see cref="ReleaseAsync"/> or
/// <see cref="DisposeAsync"/>, which end the lease on purpose. Handlers run inline on the keeper's timer or renewal
/// thread, so the primary fences without a queueing delay: keep them short, and never wait synchronously on
/// <see cref="DisposeAsync"/> inside one.
/// </para>
/// </remarks>
public sealed class LeaseKeeper : IAsyncDisposable
{
    /// <summary>The share of the TTL the keeper gives up at the end of each grant: 10 % (100 ms of a 1 s lease).</summary>
    public const double SafetyFraction = 0.1;

    private const int Active = 0;
    private const int LostState = 1;
    private const int Ended = 2; // released or disposed

    private readonly WitnessClient _client;
    private readonly object _gate = new();
    private readonly CancellationTokenSource _stop = new();
    private readonly Timer _expiryTimer;
    private readonly TimeSpan _askedInterval;
    private Task _renewLoop = Task.CompletedTask;
    private long _validUntil; // LeaseClock timestamp
    private long _epoch;
    private long _renewals;
    private int _state;
    private volatile bool _standbyBehind;
    private string _lastFailure = "no renewal attempted yet";
    private long _renewIntervalTicks; // TimeSpan ticks

    private LeaseKeeper(WitnessClient client, string nodeId, TimeSpan ttl, TimeSpan renewInterval, TimeSpan grantedTtl, long epoch, Action<string>? onLost)
    {
        _client = client;
        NodeId = nodeId;
        Ttl = ttl;
        _askedInterval = renewInterval;
        _renewIntervalTicks = IntervalFor(renewInterval, ttl, grantedTtl).Ticks;
        _epoch = epoch;
        Lost = onLost;
        _expiryTimer = new Timer(static s => ((LeaseKeeper)s!).CheckExpiry(), this, Timeout.Infinite, Timeout.Infinite);
    }

    /// <summary>
    /// Raised once when the lease stops being valid, with the reason. See the remarks for when. A reason that names the
    /// last failed renewal names an answer outside the witness protocol that the <see cref="WitnessClient"/> has already
    /// logged (a replicated node's client logs to the node's log) as "in the node's log" (the line that logged it; clients see the same reason), instead of repeating it.
    /// </summary>
    public event Action<string>? Lost;

    /// <summary>The node holding the lease.</summary>
    public string NodeId { get; }

    /// <summary>The TTL asked for on each renewal.</summary>
    public TimeSpan Ttl { get; }

    /// <summary>
    /// How often the lease is renewed: the interval asked for, shortened in proportion while the witness grants a shorter
    /// TTL than <see cref="Ttl"/> (its <see cref="WitnessOptions.MaxTtl"/>, 10 s by default), so that a quarter of the TTL
    /// stays a quarter of the lease actually held.
    /// </summary>
    public TimeSpan RenewInterval => TimeSpan.FromTicks(Volatile.Read(ref _renewIntervalTicks));

    /// <summary>The epoch of the last grant.</summary>
    public long Epoch => Volatile.Read(ref _epoch);

    /// <summary>
    /// What the witness recorded about this holder's standby, from the grant and from <see cref="SetStandbyBehindAsync"/>
    /// (only the holder changes it): true while it is recorded behind (this node confirmed publishes the standby lacks),
    /// so the witness grants the lease to no other node. Calls to <see cref="SetStandbyBehindAsync"/> must not overlap.
    /// </summary>
    public bool StandbyBehind => _standbyBehind;

    /// <summary>
    /// Tests: where the lease ends for this keeper, a <see cref="LeaseClock"/> timestamp (<c>CLOCK_BOOTTIME</c> on Linux,
    /// which goes on while the host is suspended, as the witness's clock does).
    /// </summary>
    internal long ValidUntil => Volatile.Read(ref _validUntil);

    /// <summary>Successful renewals since the first grant.</summary>
    public long Renewals => Volatile.Read(ref _renewals);

    /// <summary>
    /// True while this node may act as primary: the lease has been neither lost, released nor disposed, and the
    /// current time is before the conservative end of the last grant.
    /// </summary>
    public bool IsValid => Volatile.Read(ref _state) == Active && LeaseClock.GetTimestamp() < Volatile.Read(ref _validUntil);

    /// <summary>
    /// Acquires the lease, then keeps renewing it in the background. Null when the witness did not grant it (another
    /// node holds it, or it could not be reached), or when the grant arrived too late to leave any usable lease.
    /// </summary>
    /// <param name="client">The witness connection; the keeper uses it but does not own it.</param>
    /// <param name="nodeId">This node: 1-64 characters of [A-Za-z0-9._-].</param>
    /// <param name="epoch">This node's current epoch.</param>
    /// <param name="ttl">The lease length, 50 ms to 60 s.</param>
    /// <param name="renewInterval">
    /// How often to renew; default a quarter of the TTL (three tries before the lease runs out). Shortened in proportion
    /// while the witness grants less than <paramref name="ttl"/> (see <see cref="RenewInterval"/>).
    /// </param>
    /// <param name="onLost">Subscribed to <see cref="Lost"/> before the background loop starts, so no loss can be missed.</param>
    /// <param name="ct">Cancels the first acquisition.</param>
    /// <param name="notGranted">Told the witness's answer when the result is null (denied, unreachable, error, too late).</param>
    /// <param name="force">
    /// Take the lease once it runs out even if its holder reported its standby behind (an operator's forced promotion:
    /// what the holder confirmed as local is lost).
    /// </param>
    /// <exception cref="ArgumentException">Invalid node id, epoch, TTL or renewal interval.</exception>
    public static async Task<LeaseKeeper?> TryStartAsync(
        WitnessClient client,
        string nodeId,
        long epoch,
        TimeSpan ttl,
        TimeSpan? renewInterval = null,
        Action<string>? onLost = null,
        CancellationToken ct = default,
        Action<LeaseResult>? notGranted = null,
        bool force = false)
    {
        ArgumentNullException.ThrowIfNull(client);
        WitnessProtocol.ValidateNodeId(nodeId, nameof(nodeId));
        ArgumentOutOfRangeException.ThrowIfNegative(epoch);
        _ = WitnessProtocol.ToTtlMs(ttl, nameof(ttl));
        var interval = renewInterval ?? ttl / 4;
        if (interval <= TimeSpan.Zero || interval >= ttl * (1 - SafetyFraction))
        {
            throw new ArgumentOutOfRangeException(nameof(renewInterval), interval, "The renewal interval must be positive and shorter than the usable part of the TTL.");
        }

        var sentAt = LeaseClock.GetTimestamp();
        var grant = await client.AcquireAsync(nodeId, epoch, ttl, force, ct).ConfigureAwait(false);
        if (!grant.IsGranted || LeaseClock.GetTimestamp() >= sentAt + UsableTicks(grant.Ttl))
        {
            // Denied, unreachable, or answered too late to be of any use.
            notGranted?.Invoke(grant.IsGranted ? LeaseResult.Failed(LeaseResultKind.Error, $"the grant ({grant}) arrived too late to be used") : grant);
            return null;
        }

        var keeper = new LeaseKeeper(client, nodeId, ttl, interval, grant.Ttl, grant.Epoch, onLost) { _standbyBehind = grant.StandbyBehind };
        keeper.Extend(sentAt, grant.Ttl);
        keeper._renewLoop = Task.Run(keeper.RenewLoopAsync, CancellationToken.None);
        return keeper;
    }

    /// <summary>
    /// Tells the witness whether this holder's standby holds everything it confirmed (see
    /// <see cref="WitnessClient.SetStandbyAsync"/>); true once the witness has recorded it. A denial (another node holds
    /// the lease now) marks the lease lost. Without a recorded answer <see cref="StandbyBehind"/> is false: the witness may
    /// hold either value, and the holder must report "behind" again before confirming what its standby lacks.
    /// </summary>
    public async Task<bool> SetStandbyBehindAsync(bool behind, CancellationToken ct = default)
    {
        if (Volatile.Read(ref _state) != Active)
        {
            return false;
        }

        // Until an answer says otherwise the witness may hold either value, and "in sync" is the one that must be
        // assumed: this node then reports "behind" again before it confirms anything the standby lacks.
        _standbyBehind = false;
        LeaseResult result;
        try
        {
            result = await _client.SetStandbyAsync(NodeId, Epoch, behind, ct).ConfigureAwait(false);
        }
        catch (ObjectDisposedException)
        {
            return false;
        }

        switch (result.Kind)
        {
            case LeaseResultKind.StandbyRecorded:
                _standbyBehind = result.StandbyBehind;
                return result.StandbyBehind == behind;
            case LeaseResultKind.Denied:
                MarkLost($"standby report denied: {result.Holder} holds the lease at epoch {result.Epoch}");
                return false;
            default:
                Volatile.Write(ref _lastFailure, result.ForLog());
                return false;
        }
    }

    /// <summary>
    /// Ends the lease on purpose: <see cref="IsValid"/> turns false first, then the witness is told, so another node can
    /// be granted the lease at once. <see cref="Lost"/> is not raised.
    /// </summary>
    public async Task<LeaseResult> ReleaseAsync(CancellationToken ct = default)
    {
        await EndAsync().ConfigureAwait(false);
        try
        {
            return await _client.ReleaseAsync(NodeId, ct).ConfigureAwait(false);
        }
        catch (ObjectDisposedException)
        {
            return LeaseResult.Failed(LeaseResultKind.Unreachable, "the witness client was disposed; the lease runs out at the witness");
        }
    }

    /// <summary>
    /// Stops renewing; <see cref="IsValid"/> turns false at once. The witness is not told: the lease runs out there after
    /// its TTL (use <see cref="ReleaseAsync"/> for a quick hand-over). <see cref="Lost"/> is not raised.
    /// </summary>
    public async ValueTask DisposeAsync() => await EndAsync().ConfigureAwait(false);

    private async Task EndAsync()
    {
        lock (_gate)
        {
            if (_state == Active)
            {
                Volatile.Write(ref _state, Ended);
            }
        }

        await StopBackgroundAsync().ConfigureAwait(false);
    }

    private async Task StopBackgroundAsync()
    {
        try
        {
            await _stop.CancelAsync().ConfigureAwait(false);
        }
        catch (ObjectDisposedException)
        {
        }

        await _renewLoop.ConfigureAwait(false);
        await _expiryTimer.DisposeAsync().ConfigureAwait(false); // waits for a callback in progress
        _stop.Dispose();
    }

    private async Task RenewLoopAsync()
    {
        var token = _stop.Token;
        using var period = new PeriodicTimer(RenewInterval);
        try
        {
            while (await period.WaitForNextTickAsync(token).ConfigureAwait(false))
            {
                var sentAt = LeaseClock.GetTimestamp(); // before the request: the grant counts from here
                LeaseResult result;
                try
                {
                    result = await _client.AcquireAsync(NodeId, Epoch, Ttl, token).ConfigureAwait(false);
                }
                catch (ObjectDisposedException)
                {
                    MarkLost("the witness client was disposed");
                    return;
                }

                switch (result.Kind)
                {
                    case LeaseResultKind.Granted when result.Epoch == Epoch:
                        // Not taken from a renewal: only this holder changes it, and a renewal answered just before its
                        // STANDBY report could overwrite the report's answer with the older value.
                        Extend(sentAt, result.Ttl);
                        Interlocked.Increment(ref _renewals);
                        if (IntervalFor(_askedInterval, Ttl, result.Ttl) is var interval && interval != period.Period)
                        {
                            // A witness restarted with another MaxTtl: renew in step with what it grants now.
                            Volatile.Write(ref _renewIntervalTicks, interval.Ticks);
                            period.Period = interval;
                        }

                        break;
                    case LeaseResultKind.Granted:
                        // Only a new holder gets a new epoch: the witness lost track of this node's lease in between.
                        MarkLost($"the witness granted epoch {result.Epoch} instead of renewing epoch {Epoch}: the lease was not continuous");
                        return;
                    case LeaseResultKind.Denied:
                        MarkLost($"renewal denied: {result.Holder} holds the lease at epoch {result.Epoch}");
                        return;
                    default:
                        // Unreachable or an error: keep trying until the expiry timer gives up. An answer outside the
                        // protocol is on the line the witness client logged: the loss names it without repeating it.
                        Volatile.Write(ref _lastFailure, result.ForLog());
                        break;
                }
            }
        }
        catch (OperationCanceledException)
        {
            // Ended, or lost.
        }
    }

    private void Extend(long sentAt, TimeSpan grantedTtl)
    {
        var usable = UsableTicks(grantedTtl);
        lock (_gate)
        {
            if (_state != Active)
            {
                return;
            }

            Volatile.Write(ref _validUntil, Math.Max(_validUntil, sentAt + usable));
            ArmExpiryTimer();
        }
    }

    /// <summary>
    /// The renewal interval for a grant: <paramref name="asked"/>, or, when the witness granted less than
    /// <paramref name="ttl"/> (a TTL above its MaxTtl), that much less in proportion. Renewing at the pace of the TTL
    /// asked for, a node asking for 40 s from a witness granting 10 s renewed every 10 s a lease it believed in for 9 s,
    /// and lost it every time.
    /// </summary>
    private static TimeSpan IntervalFor(TimeSpan asked, TimeSpan ttl, TimeSpan granted) =>
        granted > TimeSpan.Zero && granted < ttl ? TimeSpan.FromTicks(Math.Max(1, (long)(asked.Ticks * (granted.Ticks / (double)ttl.Ticks)))) : asked;

    private static long UsableTicks(TimeSpan grantedTtl) => (long)(grantedTtl.TotalSeconds * (1 - SafetyFraction) * LeaseClock.Frequency);

    private void ArmExpiryTimer()
    {
        var ticks = _validUntil - LeaseClock.GetTimestamp();
        var ms = ticks <= 0 ? 0 : (ticks * 1000 / LeaseClock.Frequency) + 1; // +1: never fire before validUntil
        try
        {
            _expiryTimer.Change(ms, Timeout.Infinite);
        }
        catch (ObjectDisposedException)
        {
        }
    }

    private void CheckExpiry()
    {
        lock (_gate)
        {
            if (_state != Active)
            {
                return;
            }

            if (LeaseClock.GetTimestamp() < _validUntil)
            {
                ArmExpiryTimer(); // woken early, or a renewal moved the end while this callback was queued
                return;
            }
        }

        MarkLost($"no successful renewal before the lease ran out (last attempt: {Volatile.Read(ref _lastFailure)})");
    }

    private void MarkLost(string reason)
    {
        lock (_gate)
        {
            if (_state != Active)
            {
                return;
            }

            Volatile.Write(ref _state, LostState);
        }

        try
        {
            _stop.Cancel();
        }
        catch (ObjectDisposedException)
        {
        }

        try
        {
            Lost?.Invoke(reason);
        }
        catch (Exception)
        {
            // A throwing handler must not crash the timer thread; the keeper is already invalid either way.
        }
    }
}
