namespace FastBroker.Protocol;

/// <summary>Header flags of NACK.</summary>
[Flags]
public enum NackFlags : byte
{
    /// <summary>Do not requeue: dead-letter the message now.</summary>
    None = 0,

    /// <summary>Requeue the message for redelivery after <c>delayMs</c>.</summary>
    Requeue = 1 << 0,
}
