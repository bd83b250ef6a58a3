using System.Buffers;
using System.Text;
using FastBroker.Protocol;

namespace FastBroker.ProtocolTests;

/// <summary>
/// FrameWriter.WriteError with a text reason always writes the frame: invalid UTF-16 is sent as U+FFFD, and a reason
/// longer than its limit is cut between characters and ends with "…", within the limit.
/// </summary>
public class ErrorReasonTests
{
    private static readonly UTF8Encoding s_strict = new(false, true);

    [Fact]
    public void A_reason_over_64_KiB_is_cut_with_an_ellipsis_instead_of_refused()
    {
        var reason = new string('x', 70_000);
        var sent = Reason(w => FrameWriter.WriteError(w, 1, ErrorCode.StorageError, reason.AsSpan()));
        Assert.Equal(ProtocolConstants.MaxShortBytesLength, Encoding.UTF8.GetByteCount(sent));
        Assert.Equal(new string('x', ProtocolConstants.MaxShortBytesLength - 3) + "…", sent);
    }

    [Theory]
    [InlineData(16, "aaaaaaaaaa…")] // 10 + the 4-byte pair would be 14 of the 13 left for text: the pair is not split
    [InlineData(17, "aaaaaaaaaa\U0001F600…")]
    [InlineData(2, "aa")] // no room for the ellipsis: the text alone, within the limit
    public void A_long_reason_is_cut_between_characters(int max, string expected)
    {
        var reason = "aaaaaaaaaa\U0001F600\U0001F600 and more";
        Assert.Equal(expected, Reason(w => FrameWriter.WriteError(w, 1, ErrorCode.InvalidName, reason.AsSpan(), maxReasonBytes: max)));
    }

    [Fact]
    public void A_lone_surrogate_is_sent_as_the_replacement_character()
    {
        Assert.Equal("bad \uFFFD name", Reason(w => FrameWriter.WriteError(w, 1, ErrorCode.InvalidName, "bad \uD800 name".AsSpan())));
    }

    [Fact]
    public void A_reason_that_fits_is_sent_as_it_is()
    {
        Assert.Equal("no topic 'é' — sorry", Reason(w => FrameWriter.WriteError(w, 1, ErrorCode.UnknownTopic, "no topic 'é' — sorry".AsSpan(), maxReasonBytes: 24)));
    }

    // The reason's bytes (after the 16-byte header, the 8-byte ERROR prefix and the u16 length), decoded strictly.
    private static string Reason(Action<ArrayBufferWriter<byte>> write)
    {
        var w = new ArrayBufferWriter<byte>();
        write(w);
        return s_strict.GetString(w.WrittenSpan[(ProtocolConstants.HeaderSize + 10)..]);
    }
}
