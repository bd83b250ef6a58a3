namespace FastBroker.Journal;

/// <summary>Assembly marker.</summary>
internal static class AssemblyMarker
{
}
