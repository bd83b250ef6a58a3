namespace FastBroker.Ring;

/// <summary>Assembly marker.</summary>
internal static class AssemblyMarker
{
}
