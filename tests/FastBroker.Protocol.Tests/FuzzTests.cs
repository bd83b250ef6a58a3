using System.Buffers;
using System.Buffers.Binary;
using FastBroker.Protocol;

namespace FastBroker.ProtocolTests;

/// <summary>
/// Bounded randomized input (fixed seeds): the parser returns a frame, needs-more-data or an error; it never
/// throws (a read out of bounds would throw from the sequence reader), never loops and always makes progress.
/// </summary>
public class FuzzTests
{
    private const int MaxFrame = 4096;

    [Theory]
    [InlineData(1, true)]
    [InlineData(2, false)]
    public void Random_bytes(int seed, bool fromClient)
    {
        var random = new Random(seed);
        for (var i = 0; i < 12_500; i++)
        {
            var bytes = new byte[random.Next(0, 200)];
            random.NextBytes(bytes);
            if (bytes.Length >= 8 && random.Next(2) == 0)
            {
                // Make the header plausible so the body parsers see most of the traffic.
                BinaryPrimitives.WriteUInt32LittleEndian(bytes, (uint)random.Next(12, bytes.Length + 4));
                bytes[4] = PickType(random, fromClient);
                bytes[5] = (byte)random.Next(2);
                bytes[6] = bytes[7] = 0;
            }

            Run(bytes, random, fromClient);
        }
    }

    [Theory]
    [InlineData(3, true)]
    [InlineData(4, false)]
    public void Mutated_valid_frames(int seed, bool fromClient)
    {
        var random = new Random(seed);
        var corpus = fromClient ? Corpus.ClientFrames() : Corpus.ServerFrames();
        for (var i = 0; i < 12_500; i++)
        {
            var bytes = Mutate(random, corpus);
            Run(bytes, random, fromClient);
        }
    }

    private static byte PickType(Random random, bool fromClient)
    {
        var types = Enum.GetValues<FrameType>().Where(t => fromClient ? FrameTypes.IsSentByClient(t) : FrameTypes.IsSentByServer(t)).ToArray();
        return (byte)types[random.Next(types.Length)];
    }

    private static byte[] Mutate(Random random, byte[][] corpus)
    {
        // Two or three frames back to back, so a mutation can also shift the next frame's boundary.
        var frames = Enumerable.Range(0, random.Next(1, 4)).Select(_ => corpus[random.Next(corpus.Length)]).SelectMany(f => f).ToList();
        var mutations = random.Next(1, 4);
        for (var m = 0; m < mutations && frames.Count > 0; m++)
        {
            var at = random.Next(frames.Count);
            switch (random.Next(6))
            {
                case 0:
                    frames[at] ^= (byte)(1 << random.Next(8));
                    break;
                case 1:
                    frames[at] = (byte)random.Next(256);
                    break;
                case 2:
                    frames.RemoveRange(at, Math.Min(frames.Count - at, random.Next(1, 8)));
                    break;
                case 3:
                    frames.InsertRange(at, Enumerable.Range(0, random.Next(1, 8)).Select(_ => (byte)random.Next(256)));
                    break;
                case 4:
                    frames[at] = random.Next(2) == 0 ? (byte)0 : (byte)0xFF;
                    break;
                default:
                    frames.RemoveRange(at, frames.Count - at); // truncate
                    break;
            }
        }

        return [.. frames];
    }

    private static void Run(byte[] bytes, Random random, bool fromClient)
    {
        var buffer = random.Next(3) switch
        {
            0 => Segments.Whole(bytes),
            1 => Segments.OneByte(bytes),
            _ => Segments.Random(bytes, random),
        };

        var handler = new Walker();
        var iterations = 0;
        var outcome = Outcome.NeedMore;
        try
        {
            while (true)
            {
                var before = buffer.Length;
                var parsed = fromClient
                    ? FrameParser.TryParseClientFrame(ref buffer, ref handler, MaxFrame, out var error)
                    : FrameParser.TryParseServerFrame(ref buffer, ref handler, MaxFrame, out error);
                if (!parsed)
                {
                    outcome = error.IsError ? Outcome.Error : Outcome.NeedMore;
                    if (error.IsError && (error.Reason is null || !Enum.IsDefined(error.Code)))
                    {
                        Assert.Fail($"error without a reason or with an undocumented code on {Convert.ToHexString(bytes)}");
                    }

                    break;
                }

                if (buffer.Length >= before - ProtocolConstants.HeaderSize + 1)
                {
                    Assert.Fail($"a parsed frame consumed fewer than 16 bytes on {Convert.ToHexString(bytes)}");
                }

                if (++iterations > bytes.Length / ProtocolConstants.HeaderSize)
                {
                    Assert.Fail($"more frames than 16-byte headers on {Convert.ToHexString(bytes)}");
                }
            }
        }
        catch (Exception e) when (e is not Xunit.Sdk.XunitException)
        {
            Assert.Fail($"parser threw {e.GetType().Name}: {e.Message} on {Convert.ToHexString(bytes)}");
        }

        Assert.True(outcome is Outcome.Error or Outcome.NeedMore);
    }

    private enum Outcome
    {
        NeedMore,
        Error,
    }
}
