namespace FastBroker.Ring.Internal;

/// <summary>The one work-handler shape <see cref="WorkProcessor{T, TDataProvider, THandler}"/> runs (see <see cref="IRefEventHandler{T}"/>).</summary>
internal interface IRefWorkHandler<T>
{
    void OnEvent(ref T data, long sequence);

    void OnStart();

    void OnShutdown();
}
