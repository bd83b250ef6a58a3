using FastBroker.Protocol;

namespace FastBroker.Client.Internal;

/// <summary>What the server said in WELCOME, kept after the frame's spans are gone.</summary>
internal sealed record WelcomeInfo(
    ushort Version,
    int MaxFrameSize,
    ProtocolFeatures Features,
    ulong ConnectionId,
    uint MaxSubscriptions,
    uint HeartbeatIntervalMs,
    string ServerName,
    string ServerVersion);
