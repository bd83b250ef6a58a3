namespace FastBroker.Ring.Internal;

/// <summary>
/// The one handler shape the processors run: every public handler flavour (class entries, struct entries,
/// struct or interface handlers) is adapted to it by a struct, so a single processor implementation serves all.
/// </summary>
internal interface IRefEventHandler<T> : ILifecycleHandler
{
    void OnEvent(ref T data, long sequence, bool endOfBatch);

    void OnBatchStart(long batchSize);

    void OnTimeout(long sequence);
}
