using FastBroker.Protocol;

namespace FastBroker.Client;

/// <summary>Something the client reports through <see cref="BrokerClientOptions.OnEvent"/>.</summary>
public sealed class BrokerClientEvent
{
    internal BrokerClientEvent(BrokerClientEventKind kind, string message, ErrorCode code = ErrorCode.None, Exception? exception = null, uint subscriptionId = 0, long count = 0)
    {
        Kind = kind;
        Message = message;
        Code = code;
        Exception = exception;
        SubscriptionId = subscriptionId;
        Count = count;
    }

    /// <summary>What happened.</summary>
    public BrokerClientEventKind Kind { get; }

    /// <summary>A readable description.</summary>
    public string Message { get; }

    /// <summary>The protocol error code, when there is one.</summary>
    public ErrorCode Code { get; }

    /// <summary>The underlying exception, when there is one.</summary>
    public Exception? Exception { get; }

    /// <summary>The subscription or membership concerned, or 0.</summary>
    public uint SubscriptionId { get; }

    /// <summary>Messages concerned (failed publishes, dropped messages), or 0.</summary>
    public long Count { get; }

    /// <inheritdoc />
    public override string ToString() => Code == ErrorCode.None ? $"{Kind}: {Message}" : $"{Kind} ({Code}): {Message}";
}
