namespace FastBroker.Protocol;

/// <summary>
/// Why a frame was rejected. Allocation-free: <see cref="Reason"/> and <see cref="Field"/> are constant strings;
/// <see cref="ToString"/> composes them (allocates; for the error path only).
/// </summary>
public readonly struct FrameError
{
    internal FrameError(ErrorCode code, string reason, FrameType type, ulong requestId, string? field, int index)
    {
        Code = code;
        Reason = reason;
        Type = type;
        RequestId = requestId;
        Field = field;
        Index = index;
    }

    /// <summary>The code to send back: <see cref="ErrorCode.MalformedFrame"/>, <see cref="ErrorCode.FrameTooLarge"/> or <see cref="ErrorCode.UnexpectedFrame"/>; <see cref="ErrorCode.None"/> when there is no error.</summary>
    public ErrorCode Code { get; }

    /// <summary>True when a frame was rejected (false: no error, e.g. more data is needed).</summary>
    public bool IsError => Code != ErrorCode.None;

    /// <summary>The rule that was broken (a constant string, never null when <see cref="IsError"/>).</summary>
    public string Reason { get; }

    /// <summary>The frame type, or <see cref="FrameType.None"/> if the type byte was not read or is unknown.</summary>
    public FrameType Type { get; }

    /// <summary>The request id, or 0 if the 16-byte header was not complete.</summary>
    public ulong RequestId { get; }

    /// <summary>The field (docs/protocol.md name) that broke the rule, or null for header-level errors.</summary>
    public string? Field { get; }

    /// <summary>The entry index within a batch frame, or -1.</summary>
    public int Index { get; }

    /// <summary>A readable reason for an ERROR frame, e.g. <c>PUBLISH: field 'topic': field overruns the end of the frame</c>.</summary>
    public override string ToString()
    {
        if (!IsError)
        {
            return "no error";
        }

        var type = Type == FrameType.None ? "frame" : FrameTypes.GetName(Type);
        if (Field is null)
        {
            return $"{type}: {Reason}";
        }

        return Index >= 0 ? $"{type}: entry {Index}, field '{Field}': {Reason}" : $"{type}: field '{Field}': {Reason}";
    }
}
