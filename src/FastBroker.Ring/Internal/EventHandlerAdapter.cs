using System.Runtime.CompilerServices;

namespace FastBroker.Ring.Internal;

/// <summary>
/// Adapts an <see cref="IEventHandler{T}"/> to the processor's by-ref shape. With a struct
/// <typeparamref name="THandler"/> every call is direct; with the interface type itself it is one interface call.
/// </summary>
internal struct EventHandlerAdapter<T, THandler> : IRefEventHandler<T>
    where THandler : IEventHandler<T>
{
    private THandler _handler;

    public EventHandlerAdapter(THandler handler) => _handler = handler;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public void OnEvent(ref T data, long sequence, bool endOfBatch) => _handler.OnEvent(data, sequence, endOfBatch);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public void OnBatchStart(long batchSize) => _handler.OnBatchStart(batchSize);

    public void OnStart() => _handler.OnStart();

    public void OnShutdown() => _handler.OnShutdown();

    public void OnTimeout(long sequence) => _handler.OnTimeout(sequence);
}
