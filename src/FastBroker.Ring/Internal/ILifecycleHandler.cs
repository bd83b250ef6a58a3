namespace FastBroker.Ring.Internal;

/// <summary>The start/shutdown callbacks every processor's handler adapter has (batch processors and workers alike).</summary>
internal interface ILifecycleHandler
{
    void OnStart();

    void OnShutdown();
}
