using System.Runtime.CompilerServices;

namespace FastBroker.Ring.Internal;

/// <summary>Adapts an <see cref="IWorkHandler{T}"/> to the work processor's by-ref shape.</summary>
internal struct WorkHandlerAdapter<T, THandler> : IRefWorkHandler<T>
    where THandler : IWorkHandler<T>
{
    private THandler _handler;

    public WorkHandlerAdapter(THandler handler) => _handler = handler;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public void OnEvent(ref T data, long sequence) => _handler.OnEvent(data, sequence);

    public void OnStart() => _handler.OnStart();

    public void OnShutdown() => _handler.OnShutdown();
}
