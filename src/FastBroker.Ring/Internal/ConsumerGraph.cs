using System.Diagnostics;

namespace FastBroker.Ring.Internal;

/// <summary>
/// The DSL's bookkeeping, shared by both ring flavours: stages in the order they were added, which sequences
/// gate the ring (only the ends of chains), thread names, start/halt/join.
/// </summary>
internal sealed class ConsumerGraph(RingBufferBase ring, string name)
{
    private readonly List<(IConsumer Consumer, string ThreadName)> _consumers = [];
    private int _stage;
    private int _started;

    public bool IsStarted => Volatile.Read(ref _started) != 0;

    public IEnumerable<Exception> Faults => _consumers.SelectMany(c => c.Consumer.Faults);

    /// <summary>Registers a new stage after <paramref name="after"/>: its sequences now gate the ring, the upstream ones stop gating it.</summary>
    public Sequence[] AddStage(IReadOnlyList<IConsumer> consumers, IReadOnlyList<string> labels, Sequence[] after)
    {
        if (IsStarted)
        {
            ThrowHelper.ThrowAlreadyStarted();
        }

        var stage = _stage++;
        var sequences = new List<Sequence>();
        for (var i = 0; i < consumers.Count; i++)
        {
            _consumers.Add((consumers[i], $"{name}-{stage}.{i}-{labels[i]}"));
            sequences.AddRange(consumers[i].Sequences);
        }

        var result = sequences.ToArray();
        ring.Sequencer.AddGatingSequencesAsIs(result);
        foreach (var upstream in after)
        {
            ring.RemoveGatingSequence(upstream);
        }

        return result;
    }

    public void Start()
    {
        if (Interlocked.Exchange(ref _started, 1) != 0)
        {
            ThrowHelper.ThrowAlreadyStarted();
        }

        foreach (var (consumer, threadName) in _consumers)
        {
            consumer.Start(threadName);
        }
    }

    /// <summary>Halts stage by stage, upstream first, joining each before the next so that a draining pool still has its downstream running.</summary>
    public bool Halt(TimeSpan timeout)
    {
        var deadline = Stopwatch.GetTimestamp() + (long)(timeout.TotalSeconds * Stopwatch.Frequency);
        var allJoined = true;
        foreach (var (consumer, _) in _consumers)
        {
            consumer.Halt();
            var left = TimeSpan.FromSeconds(Math.Max(0, deadline - Stopwatch.GetTimestamp()) / (double)Stopwatch.Frequency);
            allJoined &= consumer.Join(left);
        }

        return allJoined;
    }

    /// <summary>True when every gating (end-of-chain) sequence has reached the cursor: everything published is processed.</summary>
    public bool HasBacklog()
    {
        var cursor = ring.Cursor;
        return ring.GetMinimumGatingSequence() < cursor;
    }
}
