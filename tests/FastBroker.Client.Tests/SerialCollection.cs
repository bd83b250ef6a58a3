namespace FastBroker.ClientTests;

/// <summary>Tests that measure the whole process (allocations) run alone, after the parallel ones.</summary>
[CollectionDefinition(nameof(SerialCollection), DisableParallelization = true)]
public sealed class SerialCollection
{
}
