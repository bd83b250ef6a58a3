using System.Buffers;
using System.Threading.Tasks.Sources;
using FastBroker.Protocol;
using Microsoft.Extensions.ObjectPool;

namespace FastBroker.Client.Internal;

/// <summary>
/// One publish from <c>PublishAsync</c> until its CONFIRM: the message's bytes (copied from the caller into a pooled
/// array, so the caller may reuse its buffer at once), its producer sequence and current request id, its links in the
/// client's send list, and the pooled completion source behind the returned <see cref="ValueTask{T}"/>.
/// </summary>
/// <remarks>
/// Two owners release it: the client (when it is confirmed, failed or, fire-and-forget, written) and the awaiter
/// (<c>GetResult</c>). Whoever releases last returns the array and the object to their pools, so steady-state
/// publishing allocates nothing. Completion is first-wins (CONFIRM, error or cancellation) and never happens under the
/// client's lock; continuations run asynchronously unless the client's options ask for inline completions.
/// </remarks>
internal sealed class PendingPublish : IValueTaskSource<long>
{
    private ManualResetValueTaskSourceCore<long> _core = new() { RunContinuationsAsynchronously = true };
    private ObjectPool<PendingPublish>? _pool;
    private BrokerClient? _client;
    private CancellationTokenRegistration _cancellation;
    private byte[] _buffer = [];
    private int _completed;
    private int _owners;

    public string Topic { get; private set; } = string.Empty;

    public int TopicLength { get; private set; }

    public int KeyLength { get; private set; }

    public int HeadersLength { get; private set; }

    public int PayloadLength { get; private set; }

    public uint TtlMs { get; private set; }

    public Durability Durability { get; private set; }

    public bool FireAndForget { get; private set; }

    /// <summary>Producer sequence (confirmable publishes only), assigned when admitted to the send list.</summary>
    public ulong Sequence { get; set; }

    /// <summary>A retry (<c>RetryAsync</c>): <see cref="Sequence"/> was given and is kept, not assigned on admission.</summary>
    public bool FixedSequence { get; set; }

    /// <summary>
    /// Written on a connection that was lost before its CONFIRM, so sent again on a later one: a refusal may then mean the
    /// broker could not tell whether the earlier copy was stored.
    /// </summary>
    public bool Resent { get; set; }

    /// <summary>Request id on the current connection; 0 = not sent on it yet.</summary>
    public ulong RequestId { get; set; }

    /// <summary>Where it is: waiting for admission, in the send list, or neither.</summary>
    public PublishQueue Queue { get; set; }

    /// <summary>Position in call order (the order of the send list), for FlushAsync.</summary>
    public long Index { get; set; }

    public PendingPublish? Previous { get; set; }

    public PendingPublish? Next { get; set; }

    public short Version => _core.Version;

    public ReadOnlySpan<byte> TopicBytes => _buffer.AsSpan(0, TopicLength);

    public ReadOnlySpan<byte> Key => _buffer.AsSpan(TopicLength, KeyLength);

    public ReadOnlySpan<byte> Headers => _buffer.AsSpan(TopicLength + KeyLength, HeadersLength);

    public ReadOnlySpan<byte> Payload => _buffer.AsSpan(TopicLength + KeyLength + HeadersLength, PayloadLength);

    /// <summary>Bytes of its PUBLISH_BATCH entry.</summary>
    public int EntrySize => (int)PublishBatchWriter.GetEntrySize(TopicLength, KeyLength, HeadersLength, PayloadLength);

    /// <summary>Copies the message in. Throws <see cref="ArgumentException"/> for what the wire format cannot carry.</summary>
    public void Initialize(ObjectPool<PendingPublish> pool, string topic, int topicLength, ReadOnlySpan<byte> payload, ReadOnlySpan<byte> key, ReadOnlySpan<byte> headers, uint ttlMs, Durability durability, bool fireAndForget, bool inlineCompletion)
    {
        _core.RunContinuationsAsynchronously = !inlineCompletion;
        _pool = pool;
        Topic = topic;
        TopicLength = topicLength;
        KeyLength = key.Length;
        HeadersLength = headers.Length;
        PayloadLength = payload.Length;
        TtlMs = ttlMs;
        Durability = durability;
        FireAndForget = fireAndForget;
        FixedSequence = false;
        Resent = false;
        _owners = fireAndForget ? 1 : 2;
        _completed = 0;
        var total = topicLength + key.Length + headers.Length + payload.Length;
        _buffer = total == 0 ? [] : ArrayPool<byte>.Shared.Rent(total);
        var span = _buffer.AsSpan();
        var written = System.Text.Encoding.UTF8.GetBytes(topic, span);
        System.Diagnostics.Debug.Assert(written == topicLength, "topic length was measured");
        key.CopyTo(span[topicLength..]);
        headers.CopyTo(span[(topicLength + key.Length)..]);
        payload.CopyTo(span[(topicLength + key.Length + headers.Length)..]);
    }

    /// <summary>Cancels the wait (not the publish, once admitted) when <paramref name="token"/> fires.</summary>
    public void RegisterCancellation(BrokerClient client, CancellationToken token)
    {
        _client = client;
        _cancellation = token.UnsafeRegister(
            static (state, ct) =>
            {
                var p = (PendingPublish)state!;
                p._client!.CancelPublish(p, ct);
            },
            this);
    }

    /// <summary>Completes with the offset (first completion wins).</summary>
    public bool TrySetResult(long offset)
    {
        if (Interlocked.Exchange(ref _completed, 1) != 0)
        {
            return false;
        }

        _core.SetResult(offset);
        return true;
    }

    /// <summary>Fails (first completion wins).</summary>
    public bool TrySetException(Exception error)
    {
        if (Interlocked.Exchange(ref _completed, 1) != 0)
        {
            return false;
        }

        _core.SetException(error);
        return true;
    }

    /// <summary>Never handed out (refused before it was queued): back to the pool at once.</summary>
    public void Discard()
    {
        _owners = 1;
        Release();
    }

    /// <summary>One owner is done with it; the last returns it to the pool.</summary>
    public void Release()
    {
        if (Interlocked.Decrement(ref _owners) != 0)
        {
            return;
        }

        if (_buffer.Length != 0)
        {
            ArrayPool<byte>.Shared.Return(_buffer);
        }

        _buffer = [];
        Topic = string.Empty;
        Previous = null;
        Next = null;
        RequestId = 0;
        Sequence = 0;
        FixedSequence = false;
        Resent = false;
        Queue = PublishQueue.None;
        _cancellation = default;
        _client = null;
        _core.Reset();
        var pool = _pool;
        _pool = null;
        pool?.Return(this);
    }

    long IValueTaskSource<long>.GetResult(short token)
    {
        try
        {
            return _core.GetResult(token);
        }
        finally
        {
            // Waits for a cancellation callback running right now, so none can touch the next incarnation.
            _cancellation.Dispose();
            Release();
        }
    }

    ValueTaskSourceStatus IValueTaskSource<long>.GetStatus(short token) => _core.GetStatus(token);

    void IValueTaskSource<long>.OnCompleted(Action<object?> continuation, object? state, short token, ValueTaskSourceOnCompletedFlags flags)
        => _core.OnCompleted(continuation, state, token, flags);
}
