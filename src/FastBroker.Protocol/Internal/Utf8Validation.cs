using System.Buffers;
using System.Text;
using System.Text.Unicode;

namespace FastBroker.Protocol.Internal;

/// <summary>UTF-8 validation over spans and multi-segment sequences (a code point may straddle segments).</summary>
internal static class Utf8Validation
{
    public static bool IsValid(ReadOnlySpan<byte> text) => Utf8.IsValid(text);

    public static bool IsValid(in ReadOnlySequence<byte> text)
        => text.IsSingleSegment ? Utf8.IsValid(text.FirstSpan) : IsValidMultiSegment(text);

    private static bool IsValidMultiSegment(in ReadOnlySequence<byte> text)
    {
        // Transcoding into a small stack buffer is the BCL's only stateful (isFinalBlock: false) validator.
        Span<char> chars = stackalloc char[128];
        Span<byte> carry = stackalloc byte[4];
        var carried = 0;
        foreach (var memory in text)
        {
            var span = memory.Span;
            if (carried > 0)
            {
                var take = Math.Min(4 - carried, span.Length);
                span[..take].CopyTo(carry[carried..]);
                var status = Utf8.ToUtf16(carry[..(carried + take)], chars, out var read, out _, replaceInvalidSequences: false, isFinalBlock: false);
                if (status == OperationStatus.InvalidData)
                {
                    return false;
                }

                if (read == 0)
                {
                    // Still incomplete: the segment was shorter than the rest of the code point.
                    carried += take;
                    continue;
                }

                // The first code point began in the carry; at least all carried bytes were consumed.
                span = span[(read - carried)..];
                carried = 0;
            }

            while (!span.IsEmpty)
            {
                var status = Utf8.ToUtf16(span, chars, out var read, out _, replaceInvalidSequences: false, isFinalBlock: false);
                if (status == OperationStatus.InvalidData)
                {
                    return false;
                }

                span = span[read..];
                if (status == OperationStatus.NeedMoreData)
                {
                    span.CopyTo(carry);
                    carried = span.Length;
                    break;
                }
            }
        }

        return carried == 0;
    }

    /// <summary>Decodes UTF-8 that was already validated (or replaces bad sequences) into a string: error paths only.</summary>
    public static string ToString(in ReadOnlySequence<byte> text)
        => text.IsSingleSegment ? Encoding.UTF8.GetString(text.FirstSpan) : Encoding.UTF8.GetString(text.ToArray());
}
