using System.Buffers;

namespace FastBroker.Protocol;

/// <summary>A parsed ADMIN_RESULT (server → client). Slices are valid only during the handler call.</summary>
public readonly ref struct AdminResultFrame
{
    /// <summary>The query this answers.</summary>
    public AdminQuery Query { get; internal init; }

    /// <summary>The encoding of <see cref="Result"/>.</summary>
    public AdminResultFormat Format { get; internal init; }

    /// <summary>The result document.</summary>
    public ReadOnlySequence<byte> Result { get; internal init; }
}
