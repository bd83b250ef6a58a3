using FastBroker.Replication.Internal;

namespace FastBroker.ReplicationTests.Failover;

/// <summary>
/// Per replication thread: its allocated bytes at its first and last pass while measuring, and on which threads; and,
/// so that a failure tells a one-off (a buffer or queue grown once, one large step) from a per-message allocation (steps
/// in many passes), how many passes allocated and the largest step between two passes.
/// </summary>
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
                s.Threads++; // fails the test: another thread's counter, no step to take
            }
            else
            {
                var step = bytes - s.End;
                if (step > 0)
                {
                    s.Steps++;
                    if (step > s.MaxStep)
                    {
                        s.MaxStep = step;
                        s.MaxStepAt = s.Passes;
                    }
                }
            }

            s.End = bytes;
            s.Passes++;
        }
    }

    public long Bytes(int slot) => Read(slot, s => s.End - s.Start);

    public long Passes(int slot) => Read(slot, s => s.Passes);

    public long Threads(int slot) => Read(slot, s => s.Threads);

    public string Report() => string.Join(", ", Enumerable.Range(0, Journaler + 1).Select(Describe));

    private string Describe(int slot)
    {
        var s = _slots[slot];
        lock (s)
        {
            var steps = s.Steps == 0 ? "" : $" (allocating in {s.Steps} of them, at most {s.MaxStep} B at pass {s.MaxStepAt})";
            return $"{Name(slot)}: {s.End - s.Start} B in {s.Passes} passes{steps}";
        }
    }

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
        public long Steps;
        public long MaxStep;
        public long MaxStepAt;
    }
}
