using System.Buffers;
using FastBroker.Protocol;

namespace FastBroker.ProtocolTests;

/// <summary>Runs the parser over a whole buffer the way a connection loop does.</summary>
internal static class Parse
{
    public const int MaxFrame = ProtocolConstants.DefaultMaxFrameSize;

    public readonly record struct Result(List<string> Log, FrameError Error, long Remaining);

    public static Result FromClient(ReadOnlySequence<byte> buffer, int maxFrameSize = MaxFrame)
    {
        var recorder = new Recorder();
        FrameError error;
        while (FrameParser.TryParseClientFrame(ref buffer, ref recorder, maxFrameSize, out error))
        {
        }

        return new Result(recorder.Log, error, buffer.Length);
    }

    public static Result FromServer(ReadOnlySequence<byte> buffer, int maxFrameSize = MaxFrame)
    {
        var recorder = new Recorder();
        FrameError error;
        while (FrameParser.TryParseServerFrame(ref buffer, ref recorder, maxFrameSize, out error))
        {
        }

        return new Result(recorder.Log, error, buffer.Length);
    }

    /// <summary>Parses whole, as 1-byte segments and as random segments; asserts all three agree; returns the log.</summary>
    public static List<string> EverySplit(byte[] bytes, bool fromClient, int seed = 1)
    {
        Func<ReadOnlySequence<byte>, Result> parse = fromClient ? b => FromClient(b) : b => FromServer(b);
        var whole = parse(Segments.Whole(bytes));
        Assert.False(whole.Error.IsError, whole.Error.ToString());
        Assert.Equal(0, whole.Remaining);
        Assert.DoesNotContain(whole.Log, l => l.Contains("BAD-BLOCK", StringComparison.Ordinal));

        var oneByte = parse(Segments.OneByte(bytes));
        Assert.Equal(whole.Log, oneByte.Log);
        Assert.Equal(0, oneByte.Remaining);

        var random = new Random(seed);
        for (var i = 0; i < 20; i++)
        {
            var split = parse(Segments.Random(bytes, random, maxSegment: 1 + random.Next(40)));
            Assert.Equal(whole.Log, split.Log);
            Assert.Equal(0, split.Remaining);
        }

        return whole.Log;
    }
}
