using FastBroker.Protocol;

namespace FastBroker.Server.Internal;

/// <summary>One publish outcome on its way from a broker thread to the session's writer (16-byte-ish struct, no boxing).</summary>
internal readonly record struct ConfirmEntry(ulong RequestId, ErrorCode Status, ulong Offset, bool Duplicate);
