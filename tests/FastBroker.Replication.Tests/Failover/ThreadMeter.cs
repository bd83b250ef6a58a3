using FastBroker.Replication.Internal;

namespace FastBroker.ReplicationTests.Failover;

/// <summary>Per replication thread: its allocated bytes at its first and last pass while measuring, and on which threads.</summary>
internal sealed class ThreadMeter
{
    /// <summary>The slot of the journaler, after those of <see cref="ReplicationThread"/>.</summary>
    public static readonly int Journaler = Enum.GetValues<ReplicationThread>().Length;

    private readonly Slot[] _slots = [.. Enumerable.Range(0, Journaler + 1).Select(_ => new Slot())];
    private volatile bool _measuring;

    public bool Measuring
    {
        get => _measuring;
        set => _measuring = value;
    }

    public static string Name(int slot) => slot == Journaler ? "Journaler" : ((ReplicationThread)slot).ToString();

    public void Passed(ReplicationThread thread) => Pass((int)thread);

    /// <summary>On the thread measured in <paramref name="slot"/>: allocation-free (the hook runs on the path it measures).</summary>
    public void Pass(int slot)
    {
        if (!_measuring)
        {
            return;
        }

        var bytes = GC.GetAllocatedBytesForCurrentThread();
        var s = _slots[slot];
        lock (s)
        {
            if (s.Passes == 0)
            {
                s.Start = bytes;
                s.ThreadId = Environment.CurrentManagedThreadId;
                s.Threads = 1;
            }
            else if (s.ThreadId != Environment.CurrentManagedThreadId)
            {
                s.Threads++;
            }

            s.End = bytes;
            s.Passes++;
        }
    }

    public long Bytes(int slot) => Read(slot, s => s.End - s.Start);

    public long Passes(int slot) => Read(slot, s => s.Passes);

    public long Threads(int slot) => Read(slot, s => s.Threads);

    public string Report() => string.Join(", ", Enumerable.Range(0, Journaler + 1).Select(i => $"{Name(i)}: {Bytes(i)} B in {Passes(i)} passes"));

    private long Read(int slot, Func<Slot, long> what)
    {
        var s = _slots[slot];
        lock (s)
        {
            return what(s);
        }
    }

    private sealed class Slot
    {
        public long Start;
        public long End;
        public long Passes;
        public int ThreadId;
        public long Threads;
    }
}
