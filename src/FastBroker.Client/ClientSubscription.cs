using System.Runtime.CompilerServices;
using FastBroker.Client.Internal;

namespace FastBroker.Client;

/// <summary>
/// A fan-out subscription: every message of every matching topic, per topic in offset order. Messages are
/// buffered (at most <see cref="SubscribeOptions.Credit"/>) and credit goes back to the server as the application
/// takes them, so a slow reader never makes the server or the client hold more. Dispose to unsubscribe. Reading
/// from several tasks at once is allowed but splits the stream between them.
/// </summary>
public sealed class ClientSubscription : IAsyncDisposable
{
    private readonly BrokerClient _client;
    private readonly SubscriptionState _state;

    internal ClientSubscription(BrokerClient client, SubscriptionState state, long startOffset)
    {
        _client = client;
        _state = state;
        StartOffset = startOffset;
    }

    /// <summary>The subscription id on the wire.</summary>
    public uint Id => _state.Id;

    /// <summary>The topic or pattern.</summary>
    public string Pattern => _state.Pattern;

    /// <summary>The durable name, or null.</summary>
    public string? DurableName => _state.DurableName;

    /// <summary>The first offset the server said it would deliver (0 for a wildcard pattern over several topics).</summary>
    public long StartOffset { get; }

    /// <summary>Messages received and not yet taken by the application.</summary>
    public int Buffered => _state.Buffered;

    /// <summary>Yields messages as they arrive until the subscription is disposed (then ends) or fails (then throws <see cref="BrokerClientException"/>).</summary>
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

    /// <summary>Waits for the next message.</summary>
    /// <exception cref="InvalidOperationException">The subscription was disposed and its buffer is empty.</exception>
    /// <exception cref="BrokerClientException">The server ended the subscription or the client gave up.</exception>
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
                throw new InvalidOperationException("The subscription has ended.");
            }
        }
    }

    /// <summary>Takes a buffered message without waiting.</summary>
    public bool TryRead(out ClientMessage message)
    {
        if (!_state.TryTake(out message, out var credit, out var generation))
        {
            return false;
        }

        _client.OnTaken(_state, credit, generation);
        return true;
    }

    /// <summary>
    /// Durable subscriptions: commits, for every topic, the position after the last message the application took
    /// (one COMMIT per topic that moved) and waits for the OKs. A restart with <see cref="SubscribeStart.Committed"/>
    /// resumes there.
    /// </summary>
    /// <exception cref="InvalidOperationException">The subscription is not durable.</exception>
    public ValueTask CommitAsync(CancellationToken cancellationToken = default) => _client.CommitAllAsync(_state, cancellationToken);

    /// <summary>Durable subscriptions: commits the position after <paramref name="message"/> in its topic.</summary>
    public ValueTask CommitAsync(ClientMessage message, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(message);
        if (message.Owner != _state)
        {
            throw new ArgumentException("The message was received by another subscription.", nameof(message));
        }

        return _client.CommitAsync(_state, message.Topic, message.Offset + 1, cancellationToken);
    }

    /// <summary>Unsubscribes; readers finish after the buffered messages.</summary>
    public ValueTask DisposeAsync() => _client.CloseAsync(_state);
}
