using System.Runtime.CompilerServices;

namespace FastBroker.Ring.Internal;

/// <summary>Adapts an <see cref="IValueWorkHandler{T}"/> to the work processor's by-ref shape.</summary>
internal struct ValueWorkHandlerAdapter<T, THandler> : IRefWorkHandler<T>
    where T : struct
    where THandler : IValueWorkHandler<T>
{
    private THandler _handler;

    public ValueWorkHandlerAdapter(THandler handler) => _handler = handler;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public void OnEvent(ref T data, long sequence) => _handler.OnEvent(ref data, sequence);

    public void OnStart() => _handler.OnStart();

    public void OnShutdown() => _handler.OnShutdown();
}
