namespace FastBroker.Ring.Internal;

/// <summary>An <see cref="IEventProcessor"/> on its own named background thread.</summary>
internal sealed class ProcessorConsumer(IEventProcessor processor) : IConsumer
{
    private Thread? _thread;

    public Sequence[] Sequences { get; } = [processor.Sequence];

    public IEnumerable<Exception> Faults => processor.Fault is { } f ? [f] : [];

    public void Start(string threadName)
    {
        _thread = new Thread(processor.Run) { IsBackground = true, Name = threadName };
        _thread.Start();
    }

    public void Halt() => processor.Halt();

    public bool Join(TimeSpan timeout) => _thread is null || _thread.Join(timeout);
}
