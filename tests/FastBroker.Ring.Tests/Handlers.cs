using System.Collections.Concurrent;

namespace FastBroker.Ring.Tests;

/// <summary>What a consumer saw: per-producer order checks, counts, the first failure.</summary>
public sealed class Recorder(int producers = 1)
{
    private readonly long[] _next = new long[producers];
    private long _count;
    private long _batches;

    public ConcurrentQueue<string> Failures { get; } = new();

    public long Count => Volatile.Read(ref _count);

    public long Batches => Volatile.Read(ref _batches);

    public long LastSequence { get; private set; } = -1;

    public int Starts;

    public int Shutdowns;

    public void Batch() => _batches++;

    /// <summary>Records (producer, value) from one consumer thread; values must arrive 0, 1, 2, … per producer.</summary>
    public void Saw(int producer, long value, long sequence)
    {
        if (value != _next[producer])
        {
            Fail($"producer {producer}: expected {_next[producer]}, saw {value} at sequence {sequence}");
        }

        _next[producer] = value + 1;
        if (sequence <= LastSequence)
        {
            Fail($"sequence went backwards: {sequence} after {LastSequence}");
        }

        LastSequence = sequence;
        Volatile.Write(ref _count, _count + 1);
    }

    public void Fail(string message)
    {
        if (Failures.Count < 10)
        {
            Failures.Enqueue(message);
        }
    }

    public void AssertClean() => Assert.True(Failures.IsEmpty, string.Join("; ", Failures));
}

public struct RecordingValueHandler(Recorder recorder) : IValueEventHandler<LongValue>
{
    public void OnEvent(ref LongValue data, long sequence, bool endOfBatch) => recorder.Saw(data.Producer, data.Value, sequence);

    public void OnBatchStart(long batchSize) => recorder.Batch();

    public void OnStart() => Interlocked.Increment(ref recorder.Starts);

    public void OnShutdown() => Interlocked.Increment(ref recorder.Shutdowns);
}

public struct RecordingClassHandler(Recorder recorder) : IEventHandler<LongEvent>
{
    public void OnEvent(LongEvent data, long sequence, bool endOfBatch) => recorder.Saw(data.Producer, data.Value, sequence);

    public void OnBatchStart(long batchSize) => recorder.Batch();

    public void OnStart() => Interlocked.Increment(ref recorder.Starts);

    public void OnShutdown() => Interlocked.Increment(ref recorder.Shutdowns);
}

/// <summary>Counts how often each sequence was handled, across threads.</summary>
public sealed class HitCounter(int size)
{
    private readonly int[] _hits = new int[size];
    private long _total;

    public long Total => Volatile.Read(ref _total);

    public void Hit(long value)
    {
        Interlocked.Increment(ref _hits[value]);
        Interlocked.Increment(ref _total);
    }

    public int this[long value] => Volatile.Read(ref _hits[value]);

    public (int Zero, int Once, int More) Tally(long upTo)
    {
        int zero = 0, once = 0, more = 0;
        for (var i = 0; i < upTo; i++)
        {
            switch (_hits[i])
            {
                case 0: zero++; break;
                case 1: once++; break;
                default: more++; break;
            }
        }

        return (zero, once, more);
    }
}
