using System.Runtime.CompilerServices;
using FastBroker.Client.Internal;

namespace FastBroker.Client;

/// <summary>
/// A member of a work-queue group: receives messages no other member has at the same time and settles each with
/// <see cref="AckAsync"/> (done) or <see cref="NackAsync"/> (retry later, or dead-letter). Unsettled deliveries
/// are redelivered after the visibility timeout; dispose to leave the group (the server requeues them at once).
/// </summary>
public sealed class GroupMember : IAsyncDisposable
{
    private readonly BrokerClient _client;
    private readonly SubscriptionState _state;

    internal GroupMember(BrokerClient client, SubscriptionState state)
    {
        _client = client;
        _state = state;
    }

    /// <summary>The membership id on the wire.</summary>
    public uint Id => _state.Id;

    /// <summary>The topic the group consumes.</summary>
    public string Topic => _state.Pattern;

    /// <summary>The group's name.</summary>
    public string Group => _state.Group!;

    /// <summary>Yields deliveries until the member is disposed (then ends) or fails (then throws <see cref="BrokerClientException"/>).</summary>
    public async IAsyncEnumerable<ClientMessage> ReadAllAsync([EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        var reader = _state.Channel!.Reader;
        while (await reader.WaitToReadAsync(cancellationToken).ConfigureAwait(false))
        {
            while (TryRead(out var message))
            {
                yield return message;
            }
        }
    }

    /// <summary>Waits for the next delivery.</summary>
    /// <exception cref="InvalidOperationException">The member was disposed and its buffer is empty.</exception>
    public async ValueTask<ClientMessage> ReadAsync(CancellationToken cancellationToken = default)
    {
        var reader = _state.Channel!.Reader;
        while (true)
        {
            if (TryRead(out var message))
            {
                return message;
            }

            if (!await reader.WaitToReadAsync(cancellationToken).ConfigureAwait(false))
            {
                throw new InvalidOperationException("The membership has ended.");
            }
        }
    }

    /// <summary>Takes a buffered delivery without waiting.</summary>
    public bool TryRead(out ClientMessage message) => _state.TryTake(out message, out _, out _);

    /// <summary>
    /// Acknowledges the delivery: the message is done. Returns once the ACK is queued (ACKs of one member are
    /// coalesced into one frame per flush); the server answers only failures, reported through
    /// <see cref="BrokerClientOptions.OnEvent"/> (<see cref="Protocol.ErrorCode.UnknownDelivery"/> for a delivery that
    /// timed out and went to another member). A delivery from a connection since lost is dropped silently.
    /// </summary>
    public ValueTask AckAsync(ClientMessage message, CancellationToken cancellationToken = default)
    {
        if (cancellationToken.IsCancellationRequested)
        {
            return ValueTask.FromCanceled(cancellationToken);
        }

        _client.Ack(_state, message);
        return ValueTask.CompletedTask;
    }

    /// <summary>
    /// Gives the delivery back: with <paramref name="requeue"/> it is redelivered no sooner than
    /// <paramref name="delay"/> (or dead-lettered if it reached max deliveries); without, it goes to the dead-letter
    /// topic now, with <paramref name="error"/> as its last error. Returns once the NACK is queued.
    /// </summary>
    public ValueTask NackAsync(ClientMessage message, bool requeue = true, TimeSpan delay = default, string? error = null, CancellationToken cancellationToken = default)
    {
        if (cancellationToken.IsCancellationRequested)
        {
            return ValueTask.FromCanceled(cancellationToken);
        }

        _client.Nack(_state, message, requeue, delay, error);
        return ValueTask.CompletedTask;
    }

    /// <summary>Leaves the group (UNSUBSCRIBE): unacknowledged deliveries go back to the group at once.</summary>
    public ValueTask DisposeAsync() => _client.CloseAsync(_state);
}
