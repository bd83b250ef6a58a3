using FastBroker.Engine;

namespace FastBroker;

/// <summary>Waiting for room in the full input ring (back-pressure).</summary>
public sealed partial class Broker
{
    /// <summary>How many times a publisher waiting for room went to sleep (a test's measure that waiters do not poll).</summary>
    internal long RoomSleeps => _pipeline.Room.Sleeps;

    /// <summary>Publishers registered as waiting for room now.</summary>
    internal int RoomWaiters => _pipeline.Room.Count;

    /// <summary>
    /// Completes when the input ring has room for <paramref name="count"/> slots (at most <see cref="MaxPublishClaim"/>),
    /// at once if it has now. Poll-free: the caller sleeps until the pipeline frees slots and wakes it (docs/broker.md,
    /// "Waiting for room"). Room is not reserved: another producer may take it first, so claim and, on false, wait again.
    /// </summary>
    /// <exception cref="BrokerException"><see cref="BrokerErrorCode.Closed"/>: the broker closed while waiting (or before).</exception>
    /// <exception cref="OperationCanceledException"><paramref name="cancellationToken"/> was cancelled while waiting.</exception>
    public ValueTask WaitForPublishRoomAsync(int count, CancellationToken cancellationToken = default)
    {
        var n = Math.Min(count, MaxPublishClaim);
        return _pipeline.Ring.HasAvailableCapacity(n) ? default : WaitForRoomAsync(n, cancellationToken);
    }

    private async ValueTask<long> PublishWhenRoomAsync(TopicState t, ReadOnlyMemory<byte> payload, ReadOnlyMemory<byte> key, byte[]? headers, long expires, CancellationToken cancellationToken)
    {
        while (true)
        {
            await WaitForRoomAsync(1, cancellationToken).ConfigureAwait(false);
            if (TryClaim(1, out var sequence))
            {
                return await Publish(t, sequence, payload, key, headers, expires).ConfigureAwait(false);
            }
        }
    }

    /// <summary>
    /// Returns once the input ring has room for <paramref name="count"/> slots, sleeping until the journaler frees
    /// slots (or the broker closes) while it has not: register, re-check, then sleep, so a wake-up between the check
    /// and the sleep is not lost (<see cref="RoomWaiters"/>). A wake-up that left too little room (other waiters took
    /// it) costs one more round.
    /// </summary>
    private async ValueTask WaitForRoomAsync(int count, CancellationToken cancellationToken)
    {
        var room = _pipeline.Room;
        while (true)
        {
            ThrowIfClosed();
            cancellationToken.ThrowIfCancellationRequested();
            var round = room.Enter();
            try
            {
                // After the registration: a close or freed slots from here on complete this round.
                ThrowIfClosed();
                if (_pipeline.Ring.HasAvailableCapacity(count))
                {
                    return;
                }

                room.CountSleep();
                await round.WaitAsync(cancellationToken).ConfigureAwait(false);
            }
            finally
            {
                room.Leave();
            }
        }
    }
}
