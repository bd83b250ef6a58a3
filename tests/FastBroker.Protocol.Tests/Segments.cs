using System.Buffers;

namespace FastBroker.ProtocolTests;

/// <summary>Builds multi-segment sequences the way a PipeReader hands them out.</summary>
internal static class Segments
{
    public static ReadOnlySequence<byte> Whole(byte[] data) => new(data);

    public static ReadOnlySequence<byte> OneByte(byte[] data) => Split(data, Enumerable.Repeat(1, data.Length));

    public static ReadOnlySequence<byte> Random(byte[] data, Random random, int maxSegment = 17)
    {
        var sizes = new List<int>();
        for (var left = data.Length; left > 0;)
        {
            var n = Math.Min(left, random.Next(1, maxSegment + 1));
            sizes.Add(n);
            left -= n;
        }

        return Split(data, sizes);
    }

    public static ReadOnlySequence<byte> Split(byte[] data, IEnumerable<int> sizes)
    {
        Segment? first = null;
        Segment? last = null;
        var offset = 0;
        foreach (var size in sizes)
        {
            // Each segment gets its own array, so a read past a segment end cannot silently land in the next one.
            var memory = data.AsSpan(offset, size).ToArray();
            offset += size;
            if (first is null)
            {
                first = last = new Segment(memory, 0);
            }
            else
            {
                last = last!.Append(memory);
            }
        }

        if (first is null)
        {
            return ReadOnlySequence<byte>.Empty;
        }

        return new ReadOnlySequence<byte>(first, 0, last!, last!.Memory.Length);
    }

    private sealed class Segment : ReadOnlySequenceSegment<byte>
    {
        public Segment(ReadOnlyMemory<byte> memory, long runningIndex)
        {
            Memory = memory;
            RunningIndex = runningIndex;
        }

        public Segment Append(ReadOnlyMemory<byte> memory)
        {
            var next = new Segment(memory, RunningIndex + Memory.Length);
            Next = next;
            return next;
        }
    }
}
