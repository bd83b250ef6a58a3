using System.Buffers.Binary;
using FastBroker.Client;

namespace FastBroker.Bench.Failover;

/// <summary>
/// Reads a topic written by <see cref="SequencedPublisher"/> and counts how often each sequence number is stored,
/// until the message at <paramref name="lastOffset"/> (a sentinel published after everything else) has been seen.
/// </summary>
internal sealed class PayloadCounter(long published, long lastOffset) : IClientMessageHandler
{
    private readonly int[] _counts = new int[published];
    private readonly long[] _firstOffsets = new long[published];
    private readonly System.Collections.Concurrent.ConcurrentQueue<(long Seq, long FirstOffset, long Offset)> _repeats = new();
    private long _records;

    /// <summary>Completes when the message at the last offset has been read.</summary>
    public TaskCompletionSource Done { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

    /// <summary>Records read (including the sentinel and any foreign payload).</summary>
    public long Records => Volatile.Read(ref _records);

    /// <summary>
    /// The first stored copies after the first of a sequence number (sequence, offset of its first copy, offset of this
    /// copy), for diagnostics: the two offsets tell which epochs wrote them.
    /// </summary>
    public IEnumerable<(long Seq, long FirstOffset, long Offset)> Repeats => _repeats;

    /// <summary>How many times sequence number <paramref name="seq"/> is in the topic.</summary>
    public int CountOf(long seq) => Volatile.Read(ref _counts[seq]);

    public void OnMessage(scoped in ClientMessageView message)
    {
        // One reader loop calls it: plain increments; Volatile for the reads on another thread after Done.
        Volatile.Write(ref _records, _records + 1);
        if (message.Payload.Length >= 8 && BinaryPrimitives.ReadInt64LittleEndian(message.Payload) is var seq && seq >= 0 && seq < _counts.Length)
        {
            Volatile.Write(ref _counts[seq], _counts[seq] + 1);
            if (_counts[seq] == 1)
            {
                _firstOffsets[seq] = message.Offset;
            }
            else if (_repeats.Count < 20)
            {
                _repeats.Enqueue((seq, _firstOffsets[seq], message.Offset));
            }
        }

        if (message.Offset >= lastOffset)
        {
            Done.TrySetResult();
        }
    }
}
