namespace FastBroker.Protocol;

/// <summary>A parsed ADMIN (client → server). Spans are valid only during the handler call.</summary>
public readonly ref struct AdminFrame
{
    /// <summary>What is asked for.</summary>
    public AdminQuery Query { get; internal init; }

    /// <summary>UTF-8 argument (topic name or pattern; may be empty).</summary>
    public ReadOnlySpan<byte> Argument { get; internal init; }
}
