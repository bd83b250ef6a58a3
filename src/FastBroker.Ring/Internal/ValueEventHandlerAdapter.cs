using System.Runtime.CompilerServices;

namespace FastBroker.Ring.Internal;

/// <summary>Adapts an <see cref="IValueEventHandler{T}"/> to the processor's by-ref shape (a pass-through).</summary>
internal struct ValueEventHandlerAdapter<T, THandler> : IRefEventHandler<T>
    where T : struct
    where THandler : IValueEventHandler<T>
{
    private THandler _handler;

    public ValueEventHandlerAdapter(THandler handler) => _handler = handler;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public void OnEvent(ref T data, long sequence, bool endOfBatch) => _handler.OnEvent(ref data, sequence, endOfBatch);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public void OnBatchStart(long batchSize) => _handler.OnBatchStart(batchSize);

    public void OnStart() => _handler.OnStart();

    public void OnShutdown() => _handler.OnShutdown();

    public void OnTimeout(long sequence) => _handler.OnTimeout(sequence);
}
