namespace FastBroker.ServerTests;

/// <summary>Tests that measure the whole process (allocated bytes of every thread) run alone.</summary>
[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class SerialCollection
{
    public const string Name = "serial (whole-process measurements)";
}
