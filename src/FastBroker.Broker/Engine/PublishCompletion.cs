using System.Collections.Concurrent;
using System.Threading.Tasks.Sources;

namespace FastBroker.Engine;

/// <summary>
/// The pooled completion behind <c>PublishAsync</c>: completed by the dispatcher with the message's offset, or
/// failed with a <see cref="BrokerException"/>; returned to its pool when the awaiter reads the result, so steady
/// state allocates none. Continuations run asynchronously: the dispatcher thread never runs caller code.
/// </summary>
internal sealed class PublishCompletion : IValueTaskSource<long>
{
    private static readonly ConcurrentQueue<PublishCompletion> s_pool = new();
    private static int s_pooled;

    private ManualResetValueTaskSourceCore<long> _core = new() { RunContinuationsAsynchronously = true };

    /// <summary>The task the publisher awaits.</summary>
    public ValueTask<long> Task => new(this, _core.Version);

    /// <summary>Takes a completion from the pool (or makes one).</summary>
    public static PublishCompletion Rent()
    {
        if (s_pool.TryDequeue(out var c))
        {
            Interlocked.Decrement(ref s_pooled);
            return c;
        }

        return new PublishCompletion();
    }

    /// <summary>Confirms the publish with its offset.</summary>
    public void Complete(long offset) => _core.SetResult(offset);

    /// <summary>Fails the publish.</summary>
    public void Fail(Exception error) => _core.SetException(error);

    long IValueTaskSource<long>.GetResult(short token)
    {
        try
        {
            return _core.GetResult(token);
        }
        finally
        {
            _core.Reset();
            if (Interlocked.Increment(ref s_pooled) <= 4096)
            {
                s_pool.Enqueue(this);
            }
            else
            {
                Interlocked.Decrement(ref s_pooled);
            }
        }
    }

    ValueTaskSourceStatus IValueTaskSource<long>.GetStatus(short token) => _core.GetStatus(token);

    void IValueTaskSource<long>.OnCompleted(Action<object?> continuation, object? state, short token, ValueTaskSourceOnCompletedFlags flags) =>
        _core.OnCompleted(continuation, state, token, flags);
}
