namespace FastBroker.Ring.Internal;

/// <summary>Run states of a processor.</summary>
internal static class ProcessorState
{
    public const int Idle = 0;
    public const int Halted = 1;
    public const int Running = 2;
}
