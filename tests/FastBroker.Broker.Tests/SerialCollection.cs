namespace FastBroker.BrokerTests;

/// <summary>
/// Tests that measure the whole process (allocated bytes across all threads) run alone: xunit runs other test
/// classes in parallel, and their allocations would be counted too.
/// </summary>
[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class SerialCollection
{
    public const string Name = "serial (whole-process measurements)";
}
