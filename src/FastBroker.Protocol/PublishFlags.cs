namespace FastBroker.Protocol;

/// <summary>Header flags of PUBLISH and PUBLISH_BATCH.</summary>
[Flags]
public enum PublishFlags : byte
{
    /// <summary>Confirm as usual.</summary>
    None = 0,

    /// <summary>Fire and forget: no CONFIRM is sent for stored messages; a failed message is still reported by a CONFIRM range with its error status.</summary>
    NoConfirm = 1 << 0,
}
