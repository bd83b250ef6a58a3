using FastBroker.Client.Internal;

namespace FastBroker.Client;

/// <summary>
/// A handler subscription made by <see cref="BrokerClient.ConsumeAsync{THandler}"/>: its handler receives every
/// message of every matching topic on the client's reader loop. Dispose to unsubscribe.
/// </summary>
public sealed class ClientConsumer : IAsyncDisposable
{
    private readonly BrokerClient _client;
    private readonly SubscriptionState _state;

    internal ClientConsumer(BrokerClient client, SubscriptionState state, long startOffset)
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

    /// <summary>False once disposed, or ended by the server or by the client giving up.</summary>
    public bool IsActive => !_state.Ended;

    /// <summary>
    /// Completes when the subscription ends: successfully once disposed; failed with <see cref="BrokerClientException"/>
    /// (the server's code and reason) when the server ended it, refused its resume after a reconnect for good (e.g.
    /// <see cref="Protocol.ErrorCode.StorageError"/>: its durable position file is damaged), or the client gave up
    /// (<see cref="BrokerClientEventKind.SubscriptionEnded"/> reports the server's ending too).
    /// </summary>
    public Task Completion => _state.Completion.Task;

    /// <summary>
    /// Durable subscriptions: commits, for every topic, the position after the last message the handler has returned
    /// from (one COMMIT per topic that moved) and waits for the OKs. Call it from outside the handler (it waits for
    /// the reader loop). A restart with <see cref="SubscribeStart.Committed"/> resumes there.
    /// </summary>
    /// <exception cref="InvalidOperationException">The subscription is not durable.</exception>
    public ValueTask CommitAsync(CancellationToken cancellationToken = default) => _client.CommitAllAsync(_state, cancellationToken);

    /// <summary>
    /// Unsubscribes. While connected it waits for the server's OK, which the reader loop handles after every delivery
    /// before it, so once it completes the handler is not running and is not called again.
    /// </summary>
    public ValueTask DisposeAsync() => _client.CloseAsync(_state);
}
