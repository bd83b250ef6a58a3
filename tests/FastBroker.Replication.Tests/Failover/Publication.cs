namespace FastBroker.ReplicationTests.Failover;

/// <summary>One publish of a <see cref="SequencedPublisher"/> and how it ended (fields are final once <see cref="Completion"/> has completed).</summary>
internal sealed class Publication(long sequence, string payload)
{
    public long Sequence { get; } = sequence;

    public string Payload { get; } = payload;

    /// <summary>Completes (never faults) when the publish was confirmed or failed.</summary>
    public Task Completion { get; set; } = Task.CompletedTask;

    /// <summary>The confirmed offset; -1 while unconfirmed or when it failed.</summary>
    public long Offset { get; set; } = -1;

    /// <summary>Stopwatch timestamp of the confirmation.</summary>
    public long ConfirmedAt { get; set; }

    /// <summary>The client's <c>ConnectCount</c> when the confirmation arrived: which connection (so which primary) confirmed it.</summary>
    public long Connection { get; set; }

    /// <summary>Why it was not confirmed (the client gave up, or the broker refused it).</summary>
    public Exception? Error { get; set; }

    public bool IsConfirmed => Offset >= 0;
}
