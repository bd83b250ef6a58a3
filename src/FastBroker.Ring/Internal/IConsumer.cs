namespace FastBroker.Ring.Internal;

/// <summary>A stage member the DSL starts, halts and joins: one event processor, or a whole worker pool.</summary>
internal interface IConsumer
{
    /// <summary>The sequences downstream stages and producers gate on.</summary>
    Sequence[] Sequences { get; }

    /// <summary>Starts the thread(s), named from <paramref name="threadName"/>.</summary>
    void Start(string threadName);

    /// <summary>Asks the consumer to stop (a pool first drains what was readable); returns without waiting.</summary>
    void Halt();

    /// <summary>Waits for the thread(s) to end.</summary>
    bool Join(TimeSpan timeout);

    /// <summary>Exceptions that halted the consumer's processors.</summary>
    IEnumerable<Exception> Faults { get; }
}
