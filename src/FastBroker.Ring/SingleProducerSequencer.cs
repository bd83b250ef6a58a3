using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using FastBroker.Ring.Internal;

namespace FastBroker.Ring;

/// <summary>
/// Sequencer for exactly one publishing thread: a claim is an add on a producer-private field and a
/// comparison with a cached copy of the slowest consumer's position; the consumers' sequences are read only
/// when that cache says the ring might be full. Publishing is one release store to the cursor.
/// </summary>
/// <remarks>Not thread-safe for claims: two threads calling <see cref="Sequencer.Next()"/> corrupt the ring.</remarks>
public sealed class SingleProducerSequencer : Sequencer
{
    private ProducerFields _p;

    /// <summary>Creates a sequencer for a ring of <paramref name="bufferSize"/> slots.</summary>
    public SingleProducerSequencer(int bufferSize, IWaitStrategy waitStrategy)
        : base(bufferSize, waitStrategy)
    {
        _p.NextValue = Sequence.InitialValue;
        _p.CachedGatingValue = Sequence.InitialValue;
    }

    /// <inheritdoc />
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public override long Next(int n)
    {
        if ((uint)(n - 1) >= (uint)_bufferSize)
        {
            ThrowHelper.ThrowClaimOutOfRange(n, _bufferSize);
        }

        var nextValue = _p.NextValue;
        var nextSequence = nextValue + n;
        var wrapPoint = nextSequence - _bufferSize;
        var cached = _p.CachedGatingValue;
        if (wrapPoint > cached || cached > nextValue)
        {
            _p.CachedGatingValue = WaitForCapacity(wrapPoint, nextValue);
        }

        _p.NextValue = nextSequence;
        return nextSequence;
    }

    /// <inheritdoc />
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public override bool TryNext(int n, out long sequence)
    {
        if ((uint)(n - 1) >= (uint)_bufferSize)
        {
            ThrowHelper.ThrowClaimOutOfRange(n, _bufferSize);
        }

        if (!HasCapacity(n))
        {
            sequence = default;
            return false;
        }

        sequence = _p.NextValue += n;
        return true;
    }

    /// <inheritdoc />
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public override void Publish(long sequence)
    {
        _cursor.SetValue(sequence);
        SignalIfBlocking();
    }

    /// <inheritdoc />
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public override void Publish(long lo, long hi) => Publish(hi);

    /// <inheritdoc />
    public override bool HasPublished(long sequence) => sequence <= _cursor.Value;

    /// <inheritdoc />
    public override bool IsAvailable(long sequence)
    {
        var cursor = _cursor.Value;
        return sequence <= cursor && sequence > cursor - _bufferSize;
    }

    /// <inheritdoc />
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public override long GetHighestPublishedSequence(long nextSequence, long availableSequence) => availableSequence;

    /// <inheritdoc />
    public override long RemainingCapacity()
    {
        var nextValue = _p.NextValue;
        var consumed = SequenceGroups.GetMinimumSequence(Volatile.Read(ref _gatingSequences), nextValue);
        return _bufferSize - (nextValue - consumed);
    }

    /// <inheritdoc />
    public override bool HasAvailableCapacity(int requiredCapacity) => HasCapacity(requiredCapacity);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private bool HasCapacity(int n)
    {
        var nextValue = _p.NextValue;
        var wrapPoint = nextValue + n - _bufferSize;
        var cached = _p.CachedGatingValue;
        if (wrapPoint > cached || cached > nextValue)
        {
            return RefreshCapacity(wrapPoint, nextValue);
        }

        return true;
    }

    [MethodImpl(MethodImplOptions.NoInlining)]
    private bool RefreshCapacity(long wrapPoint, long nextValue)
    {
        // Store-load fence: the cursor store of our last publish must not be ordered after these loads.
        Interlocked.MemoryBarrier();
        var min = SequenceGroups.GetMinimumSequence(Volatile.Read(ref _gatingSequences), nextValue);
        _p.CachedGatingValue = CacheableMinimum(min);
        return wrapPoint <= min;
    }

    [MethodImpl(MethodImplOptions.NoInlining)]
    private long WaitForCapacity(long wrapPoint, long nextValue)
    {
        Interlocked.MemoryBarrier();
        var counter = 0;
        long min;
        while (wrapPoint > (min = SequenceGroups.GetMinimumSequence(Volatile.Read(ref _gatingSequences), nextValue)))
        {
            WaitForSpace(ref counter);
        }

        return CacheableMinimum(min);
    }

    // The cache must stay a bound for consumers added later too, which join at the published cursor: with no
    // consumer (or all caught up) the minimum is the last claim, which is above the cursor while an earlier claim
    // is unpublished (Next, Next, Publish(lo, hi)); cached as is, it let the producer lap a consumer added then.
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private long CacheableMinimum(long min) => Math.Min(min, _cursor.Value);

    /// <summary>Producer-private state, padded so consumer-side writes nearby never invalidate it.</summary>
    [StructLayout(LayoutKind.Explicit, Size = (2 * Sequence.PaddingBytes) + 16)]
    private struct ProducerFields
    {
        [FieldOffset(Sequence.PaddingBytes)]
        public long NextValue;

        [FieldOffset(Sequence.PaddingBytes + 8)]
        public long CachedGatingValue;
    }
}
