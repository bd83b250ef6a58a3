namespace FastBroker.Protocol;

/// <summary>
/// One CONFIRM range: request ids <see cref="FirstRequestId"/> … + <see cref="Count"/> − 1 share a status; when
/// stored, request id <c>FirstRequestId + i</c> got topic offset <c>FirstOffset + i</c>.
/// </summary>
public readonly struct ConfirmRange
{
    /// <summary>Creates a range.</summary>
    public ConfirmRange(ulong firstRequestId, uint count, ErrorCode status, bool duplicate, ulong firstOffset)
    {
        FirstRequestId = firstRequestId;
        Count = count;
        Status = status;
        Duplicate = duplicate;
        FirstOffset = firstOffset;
    }

    /// <summary>The first request id of the range.</summary>
    public ulong FirstRequestId { get; }

    /// <summary>Number of request ids in the range (≥ 1).</summary>
    public uint Count { get; }

    /// <summary><see cref="ErrorCode.None"/> when stored; otherwise why all of them failed.</summary>
    public ErrorCode Status { get; }

    /// <summary>The messages were already stored (idempotent producer retry); the offsets are the original ones.</summary>
    public bool Duplicate { get; }

    /// <summary>Topic offset of the first request id (0 when <see cref="Status"/> is an error).</summary>
    public ulong FirstOffset { get; }
}
