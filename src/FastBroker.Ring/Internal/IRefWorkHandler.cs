namespace FastBroker.Ring.Internal;

/// <summary>The one work-handler shape <see cref="WorkProcessor{T, TDataProvider, THandler}"/> runs (see <see cref="IRefEventHandler{T}"/>).</summary>
internal interface IRefWorkHandler<T> : ILifecycleHandler
{
    void OnEvent(ref T data, long sequence);
}
